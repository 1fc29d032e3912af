#pragma once
// SHA-256 (FIPS 180-4), a small self-contained implementation for cache keys
// (no OpenSSL dependency). Not constant-time; not for secrets.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace samdeblur::masks {

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, std::size_t size);
  Sha256& update(const std::string& text) { return update(text.data(), text.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();  // 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  std::size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes
  bool done_ = false;
};

std::string sha256_hex(const std::string& bytes);
// Hash of a file's bytes, read in chunks; FileError naming the path on failure.
std::string sha256_file_hex(const std::string& path);

}  // namespace samdeblur::masks
