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

// True when a process with this PID exists (kill(pid, 0) does not fail with
// ESRCH). Used to tell our own leftovers of crashed runs from live ones.
bool process_alive(long pid);

// If `name` ends in "<sep><pid>" with a decimal pid (e.g. ".tmp.123" with sep
// ".tmp."), returns the pid, else -1.
long trailing_pid(const std::string& name, const std::string& sep);

// Removes the temporaries "<file>.tmp.<pid>" that write_file_atomic leaves when
// its process is killed mid-write, in `dir` and (recursive) its sub-folders,
// when <pid> is no longer running. Returns the removed paths; a missing folder
// is not an error.
std::vector<std::string> remove_stale_temporaries(const std::string& dir, bool recursive = true);

}  // namespace samdeblur
