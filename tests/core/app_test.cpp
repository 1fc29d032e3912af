#include <gtest/gtest.h>

#include <stdexcept>

#include "samdeblur/core/app.h"
#include "samdeblur/core/error.h"

TEST(RunGuarded, PassesExitCodeThrough) {
  EXPECT_EQ(samdeblur::run_guarded([] { return 0; }), 0);
  EXPECT_EQ(samdeblur::run_guarded([] { return 3; }), 3);
}

TEST(RunGuarded, MapsEveryExceptionToOne) {
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { throw samdeblur::ConfigError("bad key"); }), 1);
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { TORCH_CHECK(false, "shape"); }), 1);
  EXPECT_EQ(samdeblur::run_guarded([]() -> int { throw std::runtime_error("x"); }), 1);
}
