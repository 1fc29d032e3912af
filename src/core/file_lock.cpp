#include "samdeblur/core/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "samdeblur/core/error.h"

namespace samdeblur {
namespace fs = std::filesystem;

std::string FileLock::lock_file_for_dir(const std::string& dir) {
  std::string d = fs::path(dir).lexically_normal().string();
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".lock";
}

FileLock::FileLock(std::string lock_file, std::string what) : path_(std::move(lock_file)) {
  const fs::path p(path_);
  if (p.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
    if (ec) throw FileError(path_, "cannot create parent folder: " + ec.message());
  }
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw FileError(path_, std::string("cannot open lock file: ") + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(what + " is in use by another process" +
                  (holder.empty() ? std::string() : " (PID " + holder + ")") + "; lock file " +
                  path_ + ". Wait for it to finish or choose another folder.");
    throw FileError(path_, std::string("cannot lock: ") + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the PID; it only makes the message of a second holder poorer.
  }
}

FileLock::~FileLock() {
  if (fd_ < 0) return;
  // Keep the file: unlinking it would let a waiter lock an inode nobody else sees.
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace samdeblur
