// Hostile input at the readers (README, Robustness): damaged images, non-finite weights,
// directories given as files, overlapping safetensors ranges, .npz zip bombs. Each test
// checks the behaviour on data built here from the committed fixtures.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <regex>

#include "../../src/io/zip_util.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace io = samdeblur::io;
using samdeblur::FileError;

namespace {

const fs::path kSource = samdeblur::test::source_path("");

// The folder of this file's test inputs: unique to the process, removed at exit.
const fs::path& temp_dir() {
  static const samdeblur::test::TempDir dir("io_robustness");
  return dir.path();
}

std::string write_bytes(const std::string& name, const std::vector<uint8_t>& bytes) {
  return samdeblur::test::write_text(temp_dir() / name, std::string(bytes.begin(), bytes.end()));
}

// Expects a FileError naming `path` whose message contains `part`.
template <typename F>
void expect_file_error(F f, const std::string& path, const std::string& part) {
  try {
    f();
    FAIL() << "no FileError for " << path;
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

std::vector<fs::path> fixture_images() {
  std::vector<fs::path> out;
  for (const auto& dir : {kSource / "data/demo/photos", kSource / "tests/data/metrics"})
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string ext = e.path().extension().string();
      if (ext == ".jpg" || ext == ".png") out.push_back(e.path());
    }
  std::sort(out.begin(), out.end());
  return out;
}

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.type() == b.type() && a.size() == b.size() &&
         std::equal(a.datastart, a.dataend, b.datastart, b.dataend);
}

// Offset of the first byte after the first SOS segment of a JPEG (the entropy-coded data).
size_t scan_start(const std::vector<uint8_t>& jpg) {
  for (size_t i = 2; i + 4 < jpg.size(); ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == 0xda) return i + 2 + (size_t{jpg[i + 2]} << 8 | jpg[i + 3]);
  return 0;
}

}  // namespace

TEST(ImageDecodeCheck, ValidFixturesDecodeToTheSameBytesAsImread) {
  const auto images = fixture_images();
  ASSERT_GE(images.size(), 10u);
  for (const auto& p : images) {
    for (const bool gray : {false, true}) {
      const cv::Mat ours = io::read_image_bgr(p.string(), gray);
      const cv::Mat ref = cv::imread(p.string(), gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
      EXPECT_TRUE(same_pixels(ours, ref)) << p << (gray ? " grayscale" : " colour");
    }
  }
}

TEST(ImageDecodeCheck, TruncatedJpegIsRefusedByName) {
  const auto jpg = samdeblur::read_file_bytes((kSource / "data/demo/photos/chelsea.jpg").string());
  for (const double keep : {0.5, 0.9, 0.999}) {
    std::vector<uint8_t> cut(jpg.begin(), jpg.begin() + static_cast<long>(jpg.size() * keep));
    const std::string path = write_bytes("cut.jpg", cut);
    expect_file_error([&] { io::read_image_bgr(path); }, path, "truncated or corrupt JPEG");
    expect_file_error([&] { io::read_image_bgr(path, true); }, path, "truncated or corrupt JPEG");
  }
  // Only the end-of-image marker missing: also refused.
  std::vector<uint8_t> no_eoi(jpg.begin(), jpg.end() - 2);
  const std::string path = write_bytes("no_eoi.jpg", no_eoi);
  expect_file_error([&] { io::read_image_bgr(path); }, path, "JPEG");
}

TEST(ImageDecodeCheck, JpegWithCorruptScanDataIsRefused) {
  auto jpg = samdeblur::read_file_bytes((kSource / "data/demo/photos/coffee.jpg").string());
  const size_t start = scan_start(jpg);
  ASSERT_GT(start, 0u);
  // A marker in the middle of the entropy-coded data: "premature end of data segment".
  const size_t mid = start + (jpg.size() - start) / 2;
  jpg[mid] = 0xff;
  jpg[mid + 1] = 0xd9;
  const std::string path = write_bytes("corrupt_scan.jpg", jpg);
  expect_file_error([&] { io::read_image_bgr(path); }, path,
                    "truncated or corrupt JPEG: Corrupt JPEG data");
}

TEST(ImageDecodeCheck, DamagedPngIsRefused) {
  const auto png =
      samdeblur::read_file_bytes((kSource / "tests/data/metrics/noise_gt.png").string());
  std::vector<uint8_t> cut(png.begin(), png.begin() + static_cast<long>(png.size() * 2 / 3));
  const std::string cut_path = write_bytes("cut.png", cut);
  expect_file_error([&] { io::read_image_bgr(cut_path); }, cut_path, "truncated or corrupt PNG");
  // One flipped bit inside the image data: the IDAT CRC no longer matches.
  auto flipped = png;
  flipped[flipped.size() / 2] ^= 0x10;
  const std::string crc_path = write_bytes("crc.png", flipped);
  expect_file_error([&] { io::read_image_bgr(crc_path); }, crc_path, "truncated or corrupt PNG");
  // Missing IEND chunk.
  std::vector<uint8_t> no_iend(png.begin(), png.end() - 12);
  const std::string iend_path = write_bytes("no_iend.png", no_iend);
  expect_file_error([&] { io::read_image_bgr(iend_path); }, iend_path, "PNG");
}

TEST(ImageDecodeCheck, DirectoryIsRefused) {
  const fs::path dir = temp_dir() / "dir.png";
  fs::create_directories(dir);
  expect_file_error([&] { io::read_image_bgr(dir.string()); }, dir.string(), "directory");
}

TEST(ImageDecodeCheck, HugeDeclaredSizeIsRefusedBeforeDecoding) {
  // A PNG header declaring 100000 x 100000 pixels: refused from the header alone.
  cv::Mat small(2, 2, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> png;
  cv::imencode(".png", small, png);
  // IHDR data starts at byte 16 (8 signature + 4 length + 4 type); patch width, height, CRC.
  for (int k = 0; k < 2; ++k) {
    const uint32_t v = 100000;
    for (int b = 0; b < 4; ++b) png[16 + 4 * k + b] = static_cast<uint8_t>(v >> (24 - 8 * b));
  }
  uint32_t crc = 0xffffffffu;
  for (size_t i = 12; i < 29; ++i) {
    crc ^= png[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int b = 0; b < 4; ++b) png[29 + b] = static_cast<uint8_t>(crc >> (24 - 8 * b));
  const std::string path = write_bytes("huge.png", png);
  expect_file_error([&] { io::read_image_bgr(path); }, path, "exceeds the limit");
}

TEST(CheckpointRobustness, NonFiniteWeightsAreRefusedWithCounts) {
  torch::Tensor w = torch::ones({4, 5});
  w[0][1] = std::numeric_limits<float>::quiet_NaN();
  w[2][3] = std::numeric_limits<float>::infinity();
  w[3][3] = -std::numeric_limits<float>::infinity();
  torch::Tensor h = torch::ones({3}, torch::kFloat16);
  h[1] = std::numeric_limits<float>::quiet_NaN();
  const io::StateDict sd = {{"conv.weight", w},
                            {"conv.bias", torch::zeros({4})},
                            {"half", h},
                            {"steps", torch::arange(3)}};
  for (const std::string ext : {".pth", ".safetensors"}) {
    const std::string path = (temp_dir() / ("nan" + ext)).string();
    if (ext == ".pth")
      io::save_state_dict_file(path, sd);
    else
      io::save_safetensors(path, sd);
    try {
      io::load_state_dict_file(path, "params");
      FAIL() << "NaN weights loaded from " << path;
    } catch (const FileError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("2 tensors hold non-finite"), std::string::npos) << msg;
      EXPECT_NE(msg.find("conv.weight: 3 of 20"), std::string::npos) << msg;
      EXPECT_NE(msg.find("half: 1 of 3"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("conv.bias"), std::string::npos) << msg;
      EXPECT_NE(msg.find("allow_nonfinite"), std::string::npos) << msg;
    }
    io::ReadOptions allow;
    allow.allow_nonfinite = true;
    const io::StateDict got = io::load_state_dict_file(path, allow);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_TRUE(torch::isnan(got[0].second[0][1]).item<bool>());
  }
  const auto counts = io::count_nonfinite(sd);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].name, "conv.weight");
  EXPECT_EQ(counts[0].count, 3);
}

TEST(CheckpointRobustness, DirectoryOrFifoIsAFileErrorNamingIt) {
  const fs::path dir = temp_dir() / "ckpt_dir.pth";
  fs::create_directories(dir);
  expect_file_error([&] { io::load_state_dict_file(dir.string()); }, dir.string(),
                    "is a directory");
  const std::string missing = (temp_dir() / "missing.pth").string();
  expect_file_error([&] { io::load_state_dict_file(missing); }, missing, "not found");
}

namespace {

// A safetensors file with the given header JSON and `body` data bytes.
std::vector<uint8_t> safetensors_with(const std::string& header, size_t body) {
  std::string s(8, '\0');
  for (size_t k = 0; k < 8; ++k) s[k] = static_cast<char>((header.size() >> (8 * k)) & 0xff);
  s += header;
  s.append(body, '\0');
  return std::vector<uint8_t>(s.begin(), s.end());
}

}  // namespace

TEST(SafetensorsRobustness, OffsetsMustTileTheDataExactly) {
  // One F32 tensor of shape [n] over data bytes [b, e).
  auto entry = [](const std::string& name, int n, int b, int e) {
    return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
           "],\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
  };
  auto load = [](const std::string& header, size_t body) {
    const std::vector<uint8_t> bytes = safetensors_with(header, body);
    return io::load_state_dict_bytes(bytes.data(), bytes.size(), "t.safetensors");
  };
  const std::string st = "t.safetensors";
  // Valid, also with the header order differing from the data order.
  EXPECT_EQ(load("{" + entry("a", 2, 0, 8) + "," + entry("b", 2, 8, 16) + "}", 16).size(), 2u);
  EXPECT_EQ(load("{" + entry("b", 2, 8, 16) + "," + entry("a", 2, 0, 8) + "}", 16).size(), 2u);
  // Overlap: both tensors read the same bytes, or part of them.
  expect_file_error([&] { load("{" + entry("a", 2, 0, 8) + "," + entry("b", 2, 0, 8) + "}", 8); },
                    st, "overlap");
  expect_file_error([&] { load("{" + entry("a", 2, 0, 8) + "," + entry("b", 2, 4, 12) + "}", 12); },
                    st, "overlap");
  // Gap before, between, and bytes after the tensors.
  expect_file_error([&] { load("{" + entry("a", 2, 4, 12) + "}", 12); }, st, "gap");
  expect_file_error(
      [&] { load("{" + entry("a", 2, 0, 8) + "," + entry("b", 2, 12, 20) + "}", 20); }, st, "gap");
  expect_file_error([&] { load("{" + entry("a", 2, 0, 8) + "}", 12); }, st, "trailing bytes");
  // Reversed range.
  expect_file_error([&] { load("{" + entry("a", 0, 8, 0) + "}", 8); }, st, "data_offsets");
}

TEST(NpzRobustness, ZipBombIsRefusedFromTheNpyHeader) {
  // 64 masks of 1024 x 1024 (64 MiB of zeros, ~64 KiB deflated) for a 100 x 100 image.
  const std::string path = (temp_dir() / "bomb.npz").string();
  io::write_npz(path, {{"masks", torch::zeros({64, 1, 1024, 1024}, torch::kBool)}}, true);
  ASSERT_LT(fs::file_size(path), 1u << 20);
  expect_file_error(
      [&] {
        io::read_npz_array(path, "masks", io::NpyExpect{{100, 100}});
      },
      path + ":masks.npy", "checked before inflating");
  io::NpyExpect small;
  small.max_bytes = 1 << 20;
  expect_file_error([&] { io::read_npz_array(path, "masks", small); }, path + ":masks.npy",
                    "more than the limit");
  // A member whose header declares a small array but which inflates to much more.
  std::vector<uint8_t> npy = io::npy_bytes(torch::zeros({2, 2}, torch::kUInt8));
  npy.resize(npy.size() + (16u << 20), 0);
  const auto zip = io::detail::build_zip({{"masks.npy", npy}}, true, "bomb2.npz");
  const std::string path2 = write_bytes("bomb2.npz", zip);
  expect_file_error([&] { io::read_npz_array(path2, "masks"); }, path2 + ":masks.npy",
                    "does not match its .npy header");
  // The expected shape is accepted.
  const std::string ok = (temp_dir() / "ok.npz").string();
  io::write_npz(ok, {{"masks", torch::ones({3, 1, 4, 5}, torch::kBool)}}, true);
  EXPECT_EQ(io::read_npz_array(ok, "masks", io::NpyExpect{{4, 5}}).sizes(),
            (std::vector<int64_t>{3, 1, 4, 5}));
}
