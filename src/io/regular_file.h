#pragma once
// Reading a whole input file, refusing directories, FIFOs, devices and sockets first
// (std::ifstream opens a directory and reports a size of 2^63, which ended in
// std::bad_alloc). Shared by the checkpoint, image and npy readers.
#include <cstdint>
#include <string>
#include <vector>

namespace samdeblur::io::detail {

// Throws FileError naming `path` and `what` ("checkpoint", "image", ...) when the path does
// not exist or is not a regular file (after following symlinks); otherwise its bytes.
std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& what);

// Throws FileError when `path` is not a regular file; see read_regular_file.
void require_regular_file(const std::string& path, const std::string& what);

}  // namespace samdeblur::io::detail
