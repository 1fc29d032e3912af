#include "regular_file.h"

#include <filesystem>
#include <system_error>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"

namespace samdeblur::io::detail {

void require_regular_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw FileError(path, what + " file not found");
  if (ec) throw FileError(path, "cannot stat " + what + " file: " + ec.message());
  if (st.type() == fs::file_type::directory)
    throw FileError(path, "is a directory, expected a " + what + " file");
  if (st.type() != fs::file_type::regular)
    throw FileError(path,
                    "is not a regular file (FIFO, device or socket), expected a " + what + " file");
}

std::vector<uint8_t> read_regular_file(const std::string& path, const std::string& what) {
  require_regular_file(path, what);
  return read_file_bytes(path);
}

}  // namespace samdeblur::io::detail
