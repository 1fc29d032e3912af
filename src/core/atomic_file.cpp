#include "samdeblur/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "samdeblur/core/error.h"

namespace samdeblur {

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw FileError(path, "cannot create parent directory: " + ec.message());
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError(tmp, std::string("cannot open for writing: ") + std::strerror(errno));
  const auto* p = static_cast<const char*>(data);
  std::size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw FileError(tmp, "write failed: " + err);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw FileError(tmp, "fsync/close failed: " + err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw FileError(path, "rename failed: " + err);
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, content.data(), content.size());
}

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw FileError(path, "cannot determine size");
  in.seekg(0, std::ios::beg);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw FileError(path, "read failed");
  return bytes;
}

bool process_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

long trailing_pid(const std::string& name, const std::string& sep) {
  const auto pos = name.rfind(sep);
  if (pos == std::string::npos || pos == 0) return -1;
  const std::string digits = name.substr(pos + sep.size());
  if (digits.empty() || digits.size() > 9) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  return std::stol(digits);
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir, bool recursive) {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  auto visit = [&](const fs::directory_entry& e) {
    std::error_code sec;
    if (!e.is_regular_file(sec)) return;
    const long pid = trailing_pid(e.path().filename().string(), ".tmp.");
    if (pid < 0 || pid == static_cast<long>(::getpid()) || process_alive(pid)) return;
    if (fs::remove(e.path(), sec)) removed.push_back(e.path().string());
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir, ec)) visit(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec)) visit(e);
  }
  if (ec) throw FileError(dir, "cannot list folder: " + ec.message());
  return removed;
}

}  // namespace samdeblur
