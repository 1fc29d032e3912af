#include "samdeblur/train/tb_writer.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"

namespace samdeblur::train {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- protobuf wire format -------------------------------------------------
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t field, uint32_t wire) {
  put_varint(out, (field << 3) | wire);
}
template <typename T>
void put_fixed(std::string& out, T v) {  // little endian (x86/ARM hosts)
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, uint32_t field, const std::string& s) {
  put_tag(out, field, 2);
  put_varint(out, s.size());
  out += s;
}

std::string encode_event_head(double wall_time, int64_t step) {
  std::string e;
  put_tag(e, 1, 1);  // wall_time: double
  put_fixed<double>(e, wall_time);
  if (step != 0) {
    put_tag(e, 2, 0);  // step: int64 varint
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) break;
      const uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  template <typename T>
  T fixed() {
    T v{};
    if (end - p < static_cast<std::ptrdiff_t>(sizeof(T))) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  Reader sub() {
    const uint64_t n = varint();
    if (!ok || static_cast<uint64_t>(end - p) < n) {
      ok = false;
      return Reader{end, end, false};
    }
    Reader r{p, p + n};
    p += n;
    return r;
  }
  void skip(uint32_t wire) {
    if (wire == 0)
      varint();
    else if (wire == 1)
      fixed<uint64_t>();
    else if (wire == 5)
      fixed<uint32_t>();
    else if (wire == 2)
      sub();
    else
      ok = false;
  }
};

bool decode_value(Reader r, TbEvent::Value& v) {
  while (r.ok && r.p < r.end) {
    const uint64_t key = r.varint();
    const auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == 2) {
      Reader s = r.sub();
      v.tag.assign(reinterpret_cast<const char*>(s.p), s.end - s.p);
    } else if (field == 2 && wire == 5) {
      v.simple_value = r.fixed<float>();
    } else {
      r.skip(wire);
    }
  }
  return r.ok;
}

bool decode_event(Reader r, TbEvent& ev) {
  while (r.ok && r.p < r.end) {
    const uint64_t key = r.varint();
    const auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == 1) {
      ev.wall_time = r.fixed<double>();
    } else if (field == 2 && wire == 0) {
      ev.step = static_cast<int64_t>(r.varint());
    } else if (field == 3 && wire == 2) {
      Reader s = r.sub();
      ev.file_version.assign(reinterpret_cast<const char*>(s.p), s.end - s.p);
    } else if (field == 5 && wire == 2) {
      Reader summary = r.sub();
      while (summary.ok && summary.p < summary.end) {
        const uint64_t k2 = summary.varint();
        if ((k2 >> 3) == 1 && (k2 & 7) == 2) {
          TbEvent::Value v;
          if (!decode_value(summary.sub(), v)) return false;
          ev.values.push_back(std::move(v));
        } else {
          summary.skip(static_cast<uint32_t>(k2 & 7));
        }
      }
      if (!summary.ok) return false;
    } else {
      r.skip(wire);
    }
  }
  return r.ok;
}

}  // namespace

uint32_t crc32c(const void* data, std::size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, std::size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string encode_file_version_event(double wall_time) {
  std::string e = encode_event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value) {
  std::string v;
  put_bytes(v, 1, tag);
  put_tag(v, 2, 5);  // simple_value: float
  put_fixed<float>(v, value);
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = encode_event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

TbWriter::TbWriter(const std::string& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) throw FileError(log_dir, "cannot create TensorBoard log folder: " + ec.message());
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const double now = now_seconds();
  path_ = log_dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." +
          host + "." + std::to_string(::getpid()) + ".0";
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw FileError(path_, "cannot open for writing");
  write_record(encode_file_version_event(now));
  flush();
}

TbWriter::~TbWriter() {
  if (file_) std::fclose(file_);
}

void TbWriter::add_scalar(const std::string& tag, double value, int64_t step, double wall_time) {
  write_record(encode_scalar_event(wall_time < 0 ? now_seconds() : wall_time, step, tag,
                                   static_cast<float>(value)));
}

void TbWriter::flush() {
  if (file_ && std::fflush(file_) != 0) throw FileError(path_, "flush failed");
}

void TbWriter::write_record(const std::string& data) {
  std::string rec;
  const uint64_t len = data.size();
  put_fixed<uint64_t>(rec, len);
  put_fixed<uint32_t>(rec, masked_crc32c(&len, sizeof(len)));
  rec += data;
  put_fixed<uint32_t>(rec, masked_crc32c(data.data(), data.size()));
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size())
    throw FileError(path_, "write failed");
}

std::vector<TbEvent> read_tb_events(const std::string& path, bool allow_truncated_tail) {
  const std::vector<unsigned char> bytes = read_file_bytes(path);
  std::vector<TbEvent> events;
  std::size_t pos = 0;
  for (std::size_t index = 0; pos < bytes.size(); ++index) {
    const std::string where = "record " + std::to_string(index) + " at byte " + std::to_string(pos);
    if (bytes.size() - pos < 12) {
      if (allow_truncated_tail) break;
      throw FileError(path, where + ": truncated header");
    }
    uint64_t len;
    uint32_t len_crc;
    std::memcpy(&len, &bytes[pos], 8);
    std::memcpy(&len_crc, &bytes[pos + 8], 4);
    if (masked_crc32c(&bytes[pos], 8) != len_crc)
      throw FileError(path, where + ": length CRC mismatch");
    if (bytes.size() - pos - 12 < len + 4) {
      if (allow_truncated_tail) break;
      throw FileError(path, where + ": truncated data");
    }
    const unsigned char* data = &bytes[pos + 12];
    uint32_t data_crc;
    std::memcpy(&data_crc, data + len, 4);
    if (masked_crc32c(data, len) != data_crc) throw FileError(path, where + ": data CRC mismatch");
    TbEvent ev;
    if (!decode_event(Reader{data, data + len}, ev))
      throw FileError(path, where + ": malformed Event protobuf");
    events.push_back(std::move(ev));
    pos += 12 + len + 4;
  }
  return events;
}

}  // namespace samdeblur::train
