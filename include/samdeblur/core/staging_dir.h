#pragma once
// All-or-nothing result folders. A run writes everything into a fresh staging
// folder beside its target, "<target>.staging-<pid>", and commit() swaps it in:
// the old target is renamed to "<target>.old-<pid>", the staging folder to
// <target>, and the old one is deleted. A crash (even SIGKILL) before commit
// leaves the previous result untouched; one between the two renames leaves the
// old folder as "<target>.old-<pid>", which the next StagingDir for the same
// target renames back. Leftover staging / old folders of our own naming whose
// process is gone are removed on start, as are stale "*.tmp.<pid>" files of
// write_file_atomic inside the target.
#include <string>
#include <vector>

namespace samdeblur {

class StagingDir {
 public:
  // Recovers / cleans leftovers of earlier runs for `target`, then creates an
  // empty staging folder. Throws FileError naming the folder on failure.
  // Safety: an existing, non-empty target is only ever replaced when it holds
  // one of `markers` (files that only our own results have, e.g. summary.json)
  // or nothing but `carry_over` entries; otherwise (a folder of the user's, a
  // typo such as -o ~) a FileError refuses it before anything runs. Entries of
  // the old target named in `carry_over` (e.g. a cache folder) that the staging
  // folder lacks are moved into the new result by commit().
  explicit StagingDir(std::string target, std::vector<std::string> markers = {},
                      std::vector<std::string> carry_over = {});
  // Removes the staging folder unless commit() succeeded (best effort).
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::string& path() const { return staging_; }
  const std::string& target() const { return target_; }

  // Swaps the staging folder in as the target (carry_over entries first).
  void commit();
  bool committed() const { return committed_; }

  // Removes "<target>.staging-<pid>" folders of dead processes and restores or
  // removes "<target>.old-<pid>" ones; returns the paths handled.
  static std::vector<std::string> clean_leftovers(const std::string& target);

 private:
  std::string target_, staging_;
  std::vector<std::string> carry_over_;
  bool committed_ = false;
};

}  // namespace samdeblur
