// StagingDir: a result folder is replaced all at once or not at all, and the
// leftovers of killed runs (staging folders, moved-aside results, *.tmp.<pid>
// files) are cleaned or restored on the next start.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/staging_dir.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using samdeblur::StagingDir;
namespace test = samdeblur::test;

TEST(StagingDir, CommitReplacesTheOldResultAndCarriesOverTheCache) {
  const test::TempDir tmp("staging_commit");
  const fs::path root = tmp.path();
  const fs::path target = root / "results";
  test::write_text(target / "metrics.csv", "old");
  test::write_text(target / "images" / "stale.png", "old image");
  test::write_text(target / "mask_cache" / "x.npz", "cache");
  {
    StagingDir s(target.string(), {"metrics.csv"}, {"mask_cache"});
    EXPECT_EQ(fs::path(s.path()).parent_path(), root);
    test::write_text(fs::path(s.path()) / "metrics.csv", "new");
    EXPECT_EQ(test::read_text(target / "metrics.csv"), "old");  // untouched until commit
    s.commit();
  }
  EXPECT_EQ(test::read_text(target / "metrics.csv"), "new");
  EXPECT_FALSE(fs::exists(target / "images" / "stale.png"));  // nothing of the old run mixed in
  EXPECT_EQ(test::read_text(target / "mask_cache" / "x.npz"), "cache");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) (void)e, ++entries;
  EXPECT_EQ(entries, 1) << "no staging or backup folder left";
}

TEST(StagingDir, FailureBeforeCommitLeavesTheOldResultUntouched) {
  const test::TempDir tmp("staging_fail");
  const fs::path root = tmp.path();
  const fs::path target = root / "results";
  test::write_text(target / "metrics.csv", "old");
  std::string staging;
  try {
    StagingDir s(target.string());
    staging = s.path();
    test::write_text(fs::path(s.path()) / "metrics.csv", "partial");
    throw std::runtime_error("bad third image");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(test::read_text(target / "metrics.csv"), "old");
  EXPECT_FALSE(fs::exists(staging));
}

TEST(StagingDir, RefusesToReplaceAFolderThatIsNotAResult) {
  const test::TempDir tmp("staging_foreign");
  const fs::path root = tmp.path();
  test::write_text(root / "home" / "thesis.tex", "precious");
  EXPECT_THROW(StagingDir((root / "home").string(), {"summary.json"}, {"mask_cache"}),
               samdeblur::FileError);
  EXPECT_EQ(test::read_text(root / "home" / "thesis.tex"), "precious");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) (void)e, ++entries;
  EXPECT_EQ(entries, 1) << "no staging folder created";
  // A folder holding only the carried-over cache (a failed first run) is fine.
  test::write_text(root / "cache_only" / "mask_cache" / "a.npz", "x");
  EXPECT_NO_THROW(StagingDir((root / "cache_only").string(), {"summary.json"}, {"mask_cache"}));
}

TEST(StagingDir, FirstRunCreatesTheTarget) {
  const test::TempDir tmp("staging_first");
  const fs::path root = tmp.path();
  const fs::path target = root / "a" / "b";
  StagingDir s(target.string());
  test::write_text(fs::path(s.path()) / "summary.json", "{}");
  s.commit();
  EXPECT_EQ(test::read_text(target / "summary.json"), "{}");
}

TEST(StagingDir, LeftoversOfKilledRunsAreCleanedOrRestored) {
  const test::TempDir tmp("staging_leftovers");
  const fs::path root = tmp.path();
  const fs::path target = root / "results";
  const std::string dead = std::to_string(test::dead_pid());
  // Killed between the two renames of commit(): only "<target>.old-<pid>" holds the result.
  test::write_text(root / ("results.old-" + dead) / "metrics.csv", "complete");
  test::write_text(root / ("results.staging-" + dead) / "metrics.csv", "partial");
  test::write_text(root / "results.staging-notapid" / "keep.txt", "not ours");
  test::write_text(root / ("results.staging-" + std::to_string(::getppid())) / "x",
                   "a live process's");
  const auto handled = StagingDir::clean_leftovers(target.string());
  EXPECT_EQ(handled.size(), 2u);
  EXPECT_EQ(test::read_text(target / "metrics.csv"), "complete");
  EXPECT_FALSE(fs::exists(root / ("results.staging-" + dead)));
  EXPECT_TRUE(fs::exists(root / "results.staging-notapid" / "keep.txt"));
  EXPECT_TRUE(fs::exists(root / ("results.staging-" + std::to_string(::getppid()))));
  // With the target present, a dead run's moved-aside folder is removed.
  test::write_text(root / ("results.old-" + dead) / "metrics.csv", "older");
  StagingDir::clean_leftovers(target.string());
  EXPECT_FALSE(fs::exists(root / ("results.old-" + dead)));
  EXPECT_EQ(test::read_text(target / "metrics.csv"), "complete");
}

TEST(StaleTemporaries, OnlyDeadProcessesTemporariesAreRemoved) {
  const test::TempDir tmp("staging_tmp");
  const fs::path root = tmp.path();
  const std::string dead = std::to_string(test::dead_pid());
  test::write_text(root / "images" / ("a.png.tmp." + dead), "x");
  test::write_text(root / "images" / ("b.png.tmp." + std::to_string(::getpid())), "mine");
  test::write_text(root / "images" / "c.png.tmp.x12", "not ours");
  test::write_text(root / "images" / "d.png", "image");
  const auto removed = samdeblur::remove_stale_temporaries(root.string());
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(fs::path(removed[0]).filename(), "a.png.tmp." + dead);
  EXPECT_TRUE(fs::exists(root / "images" / ("b.png.tmp." + std::to_string(::getpid()))));
  EXPECT_TRUE(fs::exists(root / "images" / "c.png.tmp.x12"));
  EXPECT_TRUE(fs::exists(root / "images" / "d.png"));
  // A StagingDir for the folder cleans them too.
  test::write_text(root / "images" / ("e.png.tmp." + dead), "x");
  StagingDir s(root.string());
  EXPECT_FALSE(fs::exists(root / "images" / ("e.png.tmp." + dead)));
}
