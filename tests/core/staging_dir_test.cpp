// StagingDir: a result folder is replaced all at once or not at all, and the
// leftovers of killed runs (staging folders, moved-aside results, *.tmp.<pid>
// files) are cleaned or restored on the next start.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/staging_dir.h"

namespace fs = std::filesystem;
using samdeblur::StagingDir;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("sdb_staging_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The PID of a process that has exited (and been reaped): "a crashed run".
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return static_cast<long>(child);
}

}  // namespace

TEST(StagingDir, CommitReplacesTheOldResultAndCarriesOverTheCache) {
  const fs::path root = fresh_dir("commit");
  const fs::path target = root / "results";
  write(target / "metrics.csv", "old");
  write(target / "images" / "stale.png", "old image");
  write(target / "mask_cache" / "x.npz", "cache");
  {
    StagingDir s(target.string(), {"metrics.csv"}, {"mask_cache"});
    EXPECT_EQ(fs::path(s.path()).parent_path(), root);
    write(fs::path(s.path()) / "metrics.csv", "new");
    EXPECT_EQ(read(target / "metrics.csv"), "old");  // untouched until commit
    s.commit();
  }
  EXPECT_EQ(read(target / "metrics.csv"), "new");
  EXPECT_FALSE(fs::exists(target / "images" / "stale.png"));  // nothing of the old run mixed in
  EXPECT_EQ(read(target / "mask_cache" / "x.npz"), "cache");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) (void)e, ++entries;
  EXPECT_EQ(entries, 1) << "no staging or backup folder left";
  fs::remove_all(root);
}

TEST(StagingDir, FailureBeforeCommitLeavesTheOldResultUntouched) {
  const fs::path root = fresh_dir("fail");
  const fs::path target = root / "results";
  write(target / "metrics.csv", "old");
  std::string staging;
  try {
    StagingDir s(target.string());
    staging = s.path();
    write(fs::path(s.path()) / "metrics.csv", "partial");
    throw std::runtime_error("bad third image");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(read(target / "metrics.csv"), "old");
  EXPECT_FALSE(fs::exists(staging));
  fs::remove_all(root);
}

TEST(StagingDir, RefusesToReplaceAFolderThatIsNotAResult) {
  const fs::path root = fresh_dir("foreign");
  write(root / "home" / "thesis.tex", "precious");
  EXPECT_THROW(StagingDir((root / "home").string(), {"summary.json"}, {"mask_cache"}),
               samdeblur::FileError);
  EXPECT_EQ(read(root / "home" / "thesis.tex"), "precious");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root)) (void)e, ++entries;
  EXPECT_EQ(entries, 1) << "no staging folder created";
  // A folder holding only the carried-over cache (a failed first run) is fine.
  write(root / "cache_only" / "mask_cache" / "a.npz", "x");
  EXPECT_NO_THROW(StagingDir((root / "cache_only").string(), {"summary.json"}, {"mask_cache"}));
  fs::remove_all(root);
}

TEST(StagingDir, FirstRunCreatesTheTarget) {
  const fs::path root = fresh_dir("first");
  const fs::path target = root / "a" / "b";
  StagingDir s(target.string());
  write(fs::path(s.path()) / "summary.json", "{}");
  s.commit();
  EXPECT_EQ(read(target / "summary.json"), "{}");
  fs::remove_all(root);
}

TEST(StagingDir, LeftoversOfKilledRunsAreCleanedOrRestored) {
  const fs::path root = fresh_dir("leftovers");
  const fs::path target = root / "results";
  const std::string dead = std::to_string(dead_pid());
  // Killed between the two renames of commit(): only "<target>.old-<pid>" holds the result.
  write(root / ("results.old-" + dead) / "metrics.csv", "complete");
  write(root / ("results.staging-" + dead) / "metrics.csv", "partial");
  write(root / "results.staging-notapid" / "keep.txt", "not ours");
  write(root / ("results.staging-" + std::to_string(::getppid())) / "x", "a live process's");
  const auto handled = StagingDir::clean_leftovers(target.string());
  EXPECT_EQ(handled.size(), 2u);
  EXPECT_EQ(read(target / "metrics.csv"), "complete");
  EXPECT_FALSE(fs::exists(root / ("results.staging-" + dead)));
  EXPECT_TRUE(fs::exists(root / "results.staging-notapid" / "keep.txt"));
  EXPECT_TRUE(fs::exists(root / ("results.staging-" + std::to_string(::getppid()))));
  // With the target present, a dead run's moved-aside folder is removed.
  write(root / ("results.old-" + dead) / "metrics.csv", "older");
  StagingDir::clean_leftovers(target.string());
  EXPECT_FALSE(fs::exists(root / ("results.old-" + dead)));
  EXPECT_EQ(read(target / "metrics.csv"), "complete");
  fs::remove_all(root);
}

TEST(StaleTemporaries, OnlyDeadProcessesTemporariesAreRemoved) {
  const fs::path root = fresh_dir("tmp");
  const std::string dead = std::to_string(dead_pid());
  write(root / "images" / ("a.png.tmp." + dead), "x");
  write(root / "images" / ("b.png.tmp." + std::to_string(::getpid())), "mine");
  write(root / "images" / "c.png.tmp.x12", "not ours");
  write(root / "images" / "d.png", "image");
  const auto removed = samdeblur::remove_stale_temporaries(root.string());
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(fs::path(removed[0]).filename(), "a.png.tmp." + dead);
  EXPECT_TRUE(fs::exists(root / "images" / ("b.png.tmp." + std::to_string(::getpid()))));
  EXPECT_TRUE(fs::exists(root / "images" / "c.png.tmp.x12"));
  EXPECT_TRUE(fs::exists(root / "images" / "d.png"));
  // A StagingDir for the folder cleans them too.
  write(root / "images" / ("e.png.tmp." + dead), "x");
  StagingDir s(root.string());
  EXPECT_FALSE(fs::exists(root / "images" / ("e.png.tmp." + dead)));
  fs::remove_all(root);
}
