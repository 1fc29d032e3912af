// FileLock: one holder at a time; the second is refused with a message naming
// the resource and the holder's PID; the lock is free again after release.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "samdeblur/core/error.h"
#include "samdeblur/core/file_lock.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using samdeblur::FileLock;

TEST(FileLock, SecondHolderIsRefusedWithFolderAndPid) {
  const samdeblur::test::TempDir root("lock");
  const std::string dir = (root / "experiments" / "run").string();
  EXPECT_EQ(FileLock::lock_file_for_dir(dir + "/"), dir + ".lock");
  {
    FileLock first(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);
    const std::string msg = samdeblur::test::error_of(
        [&] { FileLock second(FileLock::lock_file_for_dir(dir), "experiment folder " + dir); });
    EXPECT_NE(msg.find("experiment folder " + dir), std::string::npos) << msg;
    EXPECT_NE(msg.find("PID " + std::to_string(::getpid())), std::string::npos) << msg;
  }
  FileLock again(FileLock::lock_file_for_dir(dir), "experiment folder " + dir);  // released
}
