#include <gtest/gtest.h>

#include <filesystem>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "support/test_support.h"

namespace fs = std::filesystem;

TEST(AtomicFile, WritesAndReadsBack) {
  const samdeblur::test::TempDir tmp("atomic");
  const fs::path& dir = tmp.path();
  const std::string path = (dir / "sub" / "file.txt").string();
  samdeblur::write_file_atomic(path, std::string("hello"));
  const auto bytes = samdeblur::read_file_bytes(path);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "hello");
  // No temporary file is left beside the target.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir / "sub")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  samdeblur::write_file_atomic(path, std::string("replaced"));
  const auto again = samdeblur::read_file_bytes(path);
  EXPECT_EQ(std::string(again.begin(), again.end()), "replaced");
}

TEST(AtomicFile, MissingFileNamesPath) {
  try {
    samdeblur::read_file_bytes("/nonexistent/dir/x.bin");
    FAIL() << "expected FileError";
  } catch (const samdeblur::FileError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.bin"), std::string::npos);
  }
}
