#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "samdeblur/core/app.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"

TEST(RunGuarded, PassesExitCodeThrough) {
  EXPECT_EQ(samdeblur::run_guarded([] { return 0; }), 0);
  EXPECT_EQ(samdeblur::run_guarded([] { return 3; }), 3);
}

TEST(RunGuarded, MapsEveryExceptionToOne) {
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { throw samdeblur::ConfigError("bad key"); }), 1);
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { TORCH_CHECK(false, "shape"); }), 1);
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { throw std::runtime_error("x"); }), 1);
}

TEST(ApplyQuiet, QuietShowsOnlyWarningsAndErrorsAndNoProgressBar) {
  namespace log = samdeblur::log;
  samdeblur::apply_quiet(true);
  EXPECT_FALSE(samdeblur::ProgressBar::enabled());
  testing::internal::CaptureStderr();
  log::info("apply-quiet-info-line");
  log::warn("apply-quiet-warn-line");
  const std::string quiet = testing::internal::GetCapturedStderr();
  samdeblur::apply_quiet(false);  // the default every other test runs with
  EXPECT_TRUE(samdeblur::ProgressBar::enabled());
  testing::internal::CaptureStderr();
  log::info("apply-quiet-info-line");
  const std::string loud = testing::internal::GetCapturedStderr();
  EXPECT_EQ(quiet.find("apply-quiet-info-line"), std::string::npos) << quiet;
  EXPECT_NE(quiet.find("apply-quiet-warn-line"), std::string::npos) << quiet;
  EXPECT_NE(loud.find("apply-quiet-info-line"), std::string::npos) << loud;
}
