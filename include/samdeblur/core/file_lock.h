#pragma once
// An exclusive advisory lock (flock) on a lock file, held for the lifetime of
// the object. A second holder, in this or another process, is refused with an
// Error naming what is locked and the PID written into the file by the holder.
// The kernel releases the lock when the process dies, so a crash never leaves
// a stale lock behind (the file itself stays and is reused).
#include <string>

namespace samdeblur {

class FileLock {
 public:
  // Locks `lock_file` (created if needed, parent folders too); `what` names the
  // protected resource in the error message, e.g. "experiment folder x".
  FileLock(std::string lock_file, std::string what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  const std::string& path() const { return path_; }

  // The lock file that guards folder `dir`: "<dir>.lock" beside it, so that the
  // lock survives the folder being renamed or archived.
  static std::string lock_file_for_dir(const std::string& dir);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace samdeblur
