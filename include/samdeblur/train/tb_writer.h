#pragma once
// TensorBoard event files written natively (no protobuf, no TensorFlow).
//
// File layout (TFRecord): each record is
//   uint64 length (little endian) | uint32 masked_crc32c(length bytes) |
//   data[length] | uint32 masked_crc32c(data)
// where data is a serialized tensorflow.Event protobuf, hand-encoded:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// The first record is {wall_time, file_version: "brain.Event:2"}, as TensorFlow's
// EventsWriter writes it. File name: events.out.tfevents.<unix secs>.<host>.<pid>.0
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace samdeblur::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
uint32_t crc32c(const void* data, std::size_t size, uint32_t crc = 0);
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, std::size_t size);

// Appends scalar events to one events file in `log_dir` (created if needed).
// Records are flushed by flush() and on destruction; a crash loses at most the
// unflushed tail, never corrupts earlier records.
class TbWriter {
 public:
  explicit TbWriter(const std::string& log_dir);
  ~TbWriter();
  TbWriter(const TbWriter&) = delete;
  TbWriter& operator=(const TbWriter&) = delete;

  // wall_time < 0 means now.
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = -1);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// One decoded event (only the fields TbWriter writes).
struct TbEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  struct Value {
    std::string tag;
    float simple_value = 0;
  };
  std::vector<Value> values;
};

// Reads an events file, checking both CRCs of every record; throws FileError
// naming the file and the record index on a bad length, CRC or protobuf.
// A truncated final record (a crash while writing) is an error too unless
// allow_truncated_tail is set, in which case it is dropped.
std::vector<TbEvent> read_tb_events(const std::string& path, bool allow_truncated_tail = false);

// Encodes one Event (exposed for tests).
std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value);
std::string encode_file_version_event(double wall_time);

}  // namespace samdeblur::train
