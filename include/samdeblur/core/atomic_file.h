#pragma once
// Atomic file output: write to "<path>.tmp.<pid>", fsync, rename over <path>.
// A crash leaves either the old file or the new one, never a partial file.
#include <string>
#include <vector>

namespace samdeblur {

void write_file_atomic(const std::string& path, const void* data, std::size_t size);
void write_file_atomic(const std::string& path, const std::string& content);
// Reads a whole file; throws FileError naming the path on failure.
std::vector<unsigned char> read_file_bytes(const std::string& path);

}  // namespace samdeblur
