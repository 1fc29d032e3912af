#pragma once
// Private helpers over libzip shared by the .npz and .pth readers/writers.
// Not installed; include only from src/io/*.cpp.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct zip;

namespace samdeblur::io::detail {

// Read-only view of a zip archive held in memory. All failures raise FileError(path, ...).
class ZipReader {
 public:
  // Takes ownership of the archive bytes; `path` is used in error messages.
  ZipReader(std::vector<uint8_t> bytes, std::string path);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::vector<std::string>& names() const { return names_; }
  // Index of `name`, or -1.
  int64_t find(const std::string& name) const;
  // Decompressed contents of entry `index`, CRC-checked; the size must equal the
  // size recorded in the directory, and may not exceed `max_size`.
  std::vector<uint8_t> read(int64_t index, uint64_t max_size = (uint64_t{1} << 36)) const;
  // Uncompressed size recorded for entry `index`; rejects sizes above `max_size` or beyond
  // what the compressed bytes can expand to (deflate's maximum ratio), so callers may
  // allocate it.
  uint64_t size(int64_t index, uint64_t max_size = (uint64_t{1} << 36)) const;
  // The first min(n, size) decompressed bytes of entry `index` (no CRC check: the entry is
  // not read to its end). Lets a caller inspect a header before inflating a large entry.
  std::vector<uint8_t> read_prefix(int64_t index, uint64_t n) const;
  // Reads exactly `size(index)` bytes of entry `index` into `dst`, CRC-checked.
  void read_into(int64_t index, void* dst, uint64_t size) const;
  const std::string& path() const { return path_; }

 private:
  std::vector<uint8_t> bytes_;
  std::string path_;
  ::zip* archive_ = nullptr;
  std::vector<std::string> names_;
};

// True when the bytes start like a zip archive (local file header or empty archive).
bool looks_like_zip(const uint8_t* data, size_t size);

// Builds a zip archive in memory. Entries are stored (compressed == false) or deflated.
// `path` is used in error messages only.
std::vector<uint8_t> build_zip(
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries, bool compressed,
    const std::string& path);

}  // namespace samdeblur::io::detail
