// FileLock: one holder at a time; the second is refused with a message naming
// the resource and the holder's PID; the lock is free again after release.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "samdeblur/core/error.h"
#include "samdeblur/core/file_lock.h"

namespace fs = std::filesystem;
using samdeblur::FileLock;

TEST(FileLock, SecondHolderIsRefusedWithFolderAndPid) {
  const fs::path root = fs::temp_directory_path() / ("sdb_lock_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const std::string dir = (root / "experiments" / "run").string();
  EXPECT_EQ(FileLock::lock_file_for_dir(dir + "/"), dir + ".lock");
  {
    FileLock first(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);
    try {
      FileLock second(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);
      FAIL() << "a second holder must be refused";
    } catch (const samdeblur::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("experiment folder " + dir), std::string::npos) << msg;
      EXPECT_NE(msg.find("PID " + std::to_string(::getpid())), std::string::npos) << msg;
    }
  }
  FileLock again(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);  // released
  fs::remove_all(root);
}
