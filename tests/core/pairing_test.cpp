// Pairing report: every file without a partner is named, with what an entry
// of the missing name is when it is not a file (dangling symlink, FIFO, folder).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "samdeblur/core/pairing.h"
#include "support/test_support.h"

namespace fs = std::filesystem;

TEST(Pairing, NamesEveryUnpairedFile) {
  samdeblur::FolderListing gt{
      "gt image", "/d/gt", {{"a", "/d/gt/a.png"}, {"b", "/d/gt/b.png"}, {"c", "/d/gt/c.png"}}, {}};
  samdeblur::FolderListing lq{"lq image",
                              "/d/lq",
                              {{"a", "/d/lq/a.png"}, {"x", "/d/lq/x.png"}},
                              {{"b", "/d/lq/b.png is a dangling symlink"}}};
  samdeblur::FolderListing mask{
      "mask file", "/d/m", {{"a", "/d/m/a.npz"}, {"b", "/d/m/b.npz"}, {"c", "/d/m/c.npz"}}, {}};
  const auto lines =
      samdeblur::unpaired_files(gt, {&lq, &mask}, [](const std::string& s) { return s; });
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("/d/gt/b.png: no lq image named 'b.*' in /d/lq (/d/lq/b.png is a "
                          "dangling symlink)"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("/d/gt/c.png"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("/d/lq/x.png: no gt image partner"), std::string::npos) << lines[2];
  const std::string msg = samdeblur::format_problem_list("head", lines, 2);
  EXPECT_NE(msg.find("... and 1 more"), std::string::npos) << msg;
}

TEST(Pairing, NonFileKinds) {
  const samdeblur::test::TempDir tmp("pairing");
  const fs::path d = tmp.path();
  fs::create_directories(d / "dir.png");
  std::ofstream(d / "file.png") << "x";
  fs::create_symlink(d / "missing.png", d / "link.png");
  ASSERT_EQ(::mkfifo((d / "fifo.png").c_str(), 0644), 0);
  EXPECT_EQ(samdeblur::non_file_kind(fs::directory_entry(d / "file.png")), "");
  EXPECT_EQ(samdeblur::non_file_kind(fs::directory_entry(d / "dir.png")), "a folder");
  EXPECT_EQ(samdeblur::non_file_kind(fs::directory_entry(d / "link.png")), "a dangling symlink");
  EXPECT_EQ(samdeblur::non_file_kind(fs::directory_entry(d / "fifo.png")), "a FIFO");
}
