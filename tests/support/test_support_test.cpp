// The shared test scaffolding itself (tests/support/test_support.h).
#include "support/test_support.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace samdeblur;

TEST(TestSupport, TempDirIsFreshUniqueAndRemoved) {
  fs::path kept;
  {
    const test::TempDir a("support");
    const test::TempDir b("support");
    ASSERT_TRUE(fs::is_directory(a.path()));
    EXPECT_NE(a.path(), b.path());
    EXPECT_TRUE(fs::is_empty(a.path()));
    EXPECT_NE(a.str().find("TestSupport.TempDirIsFreshUniqueAndRemoved"), std::string::npos);
    fs::create_directories(a / "sub");
    std::ofstream(a / "sub" / "f.txt") << "x";
    EXPECT_EQ(test::read_text(a / "sub" / "f.txt"), "x");
    kept = a.path();
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TestSupport, FixturePathsAndHints) {
  EXPECT_TRUE(fs::exists(test::data_path("io")));
  EXPECT_TRUE(fs::exists(test::source_path("CMakeLists.txt")));
  try {
    test::fixture_path("io/no_such_fixture.npy", "regenerate with X");
    FAIL() << "a missing fixture was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_fixture.npy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("regenerate with X"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(test::check_fixture_version("models/keys.json", 1, "hint"));
  EXPECT_THROW(test::check_fixture_version("models/keys.json", 2, "hint"), std::runtime_error);
}

TEST(TestSupport, ErrorOfAndExpectClose) {
  EXPECT_EQ(test::error_of([] { throw ConfigError("bad key"); }), "bad key");
  EXPECT_NONFATAL_FAILURE(test::error_of([] {}), "expected an exception");
  test::expect_close(torch::ones({2, 3}), torch::ones({2, 3}) + 1e-7, 1e-6, "close");
  EXPECT_NONFATAL_FAILURE(
      test::expect_close(torch::zeros({4}), torch::tensor({0., 0., 0.5, 0.}), 0.1, "far"),
      "worst |diff| 0.5 at flat index 2");
}

TEST(TestSupport, RunAppCapturesExitCodeStdoutAndStderr) {
  if (!test::app_built("sdb-synth")) GTEST_SKIP() << "apps not built (SAMDEBLUR_BUILD_APPS=OFF)";
  const auto help = test::run_app("sdb-synth", {"--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output();
  EXPECT_NE(help.out.find("--photos"), std::string::npos) << help.out;
  const test::TempDir tmp("support");
  const auto bad = test::run_app(
      "sdb-synth", {"--photos", (tmp / "nowhere").string(), "--output", (tmp / "o").string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(bad.out, "");  // errors go to stderr (the library never writes to stdout)
  EXPECT_NE(bad.err.find("nowhere"), std::string::npos) << bad.err;
  // An argument with spaces reaches the app unchanged: no shell in between.
  const auto spaced = test::run_app(
      "sdb-synth", {"--photos", (tmp / "a b; echo hi").string(), "--output", (tmp / "o").string()});
  EXPECT_NE(spaced.err.find("a b; echo hi"), std::string::npos) << spaced.err;
}

TEST(TestSupport, SdbTestsDependsOnTheApps) {
  // add_dependencies(sdb-tests <apps>): whenever the apps are enabled, building
  // sdb-tests built every one of them.
  if (!test::app_built("sdb-eval")) GTEST_SKIP() << "apps not built (SAMDEBLUR_BUILD_APPS=OFF)";
  for (const char* app : {"sdb-eval", "sdb-train", "sdb-masks", "sdb-synth", "sdb-sam-bench"})
    EXPECT_TRUE(test::app_built(app)) << app;
}
