// TensorBoard event files: CRC-32C known vectors, TFRecord framing, protobuf
// round trip through our reader, and (when python3 has `tensorboard`) the
// official EventAccumulator reading our file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/train/tb_writer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) B.4 test vectors and the classic check value.
  EXPECT_EQ(train::crc32c("123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(train::crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(train::crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(train::crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(train::crc32c(dec.data(), 32), 0x113FDB5Cu);
  // Incremental use gives the same value.
  EXPECT_EQ(train::crc32c("56789", 5, train::crc32c("1234", 4)), 0xE3069283u);
}

TEST(TbWriter, FramingAndRoundTrip) {
  const test::TempDir tmp("rt");
  const fs::path dir = tmp.path();
  std::string path;
  {
    train::TbWriter w(dir.string());
    w.add_scalar("train/loss", -12.5, 1, 1000.0);
    w.add_scalar("train/lr", 1e-3, 10, 1001.0);
    w.add_scalar("val/psnr", 30.25, 10, 1002.0);
    path = w.path();
  }
  EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
  const auto events = train::read_tb_events(path);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].values.empty());
  ASSERT_EQ(events[1].values.size(), 1u);
  EXPECT_EQ(events[1].values[0].tag, "train/loss");
  EXPECT_FLOAT_EQ(events[1].values[0].simple_value, -12.5f);
  EXPECT_EQ(events[1].step, 1);
  EXPECT_DOUBLE_EQ(events[1].wall_time, 1000.0);
  EXPECT_EQ(events[2].values[0].tag, "train/lr");
  EXPECT_FLOAT_EQ(events[2].values[0].simple_value, 1e-3f);
  EXPECT_EQ(events[3].step, 10);

  // Framing by hand: first record = uint64 length, masked CRC of the length,
  // the Event, masked CRC of the Event.
  const auto bytes = read_file_bytes(path);
  uint64_t len;
  uint32_t c1, c2;
  std::memcpy(&len, bytes.data(), 8);
  std::memcpy(&c1, bytes.data() + 8, 4);
  std::memcpy(&c2, bytes.data() + 12 + len, 4);
  EXPECT_EQ(c1, train::masked_crc32c(bytes.data(), 8));
  EXPECT_EQ(c2, train::masked_crc32c(bytes.data() + 12, len));
  // Known protobuf bytes of a scalar event: wall_time (0x09 + double), step
  // (0x10 + varint), summary (0x2a len (0x0a len (0x0a len tag) (0x15 float))).
  const std::string ev = train::encode_scalar_event(2.0, 300, "a", 1.0f);
  const std::string expected(
      "\x09\x00\x00\x00\x00\x00\x00\x00\x40"  // 2.0
      "\x10\xac\x02"                          // 300
      "\x2a\x0a\x0a\x08\x0a\x01"
      "a"
      "\x15\x00\x00\x80\x3f",
      24);
  EXPECT_EQ(ev, expected);
}

TEST(TbWriter, CorruptionIsDetected) {
  const test::TempDir tmp("bad");
  const fs::path dir = tmp.path();
  std::string path;
  {
    train::TbWriter w(dir.string());
    w.add_scalar("x", 1.0, 1);
    path = w.path();
  }
  auto bytes = read_file_bytes(path);
  bytes[bytes.size() - 6] ^= 0x01;  // inside the last Event
  write_file_atomic(path, bytes.data(), bytes.size());
  EXPECT_THROW(train::read_tb_events(path), FileError);
  bytes[bytes.size() - 6] ^= 0x01;
  write_file_atomic(path, bytes.data(), bytes.size() - 3);  // truncated tail
  EXPECT_THROW(train::read_tb_events(path), FileError);
  EXPECT_EQ(train::read_tb_events(path, /*allow_truncated_tail=*/true).size(), 1u);
}

TEST(TbWriter, ReadableByTensorBoardWhenInstalled) {
  if (!test::python_has("tensorboard"))
    GTEST_SKIP() << "python3 tensorboard not installed; framing verified in C++ above";
  const test::TempDir tmp("py");
  const fs::path dir = tmp.path();
  {
    train::TbWriter w(dir.string());
    w.add_scalar("train/loss", 0.5, 3);
  }
  const auto py = test::run_python(
      {"-c",
       "import sys; from tensorboard.backend.event_processing.event_accumulator import "
       "EventAccumulator as E; a=E(sys.argv[1]); a.Reload(); s=a.Scalars('train/loss'); "
       "assert len(s)==1 and s[0].step==3 and abs(s[0].value-0.5)<1e-6",
       dir.string()});
  EXPECT_EQ(py.exit_code, 0) << py.output();
}
