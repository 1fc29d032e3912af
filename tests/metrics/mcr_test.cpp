// The collapse test of the Mode Collapse Rate; the rate over a dataset is
// tested with eval::DatasetAccumulator (tests/eval/sample_metrics_test.cpp).
#include "samdeblur/metrics/mcr.h"

#include <gtest/gtest.h>

#include <limits>

namespace sm = samdeblur::metrics;

TEST(IsCollapsed, ThresholdAndInfinities) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(sm::is_collapsed(30.0, 26.9));
  EXPECT_FALSE(sm::is_collapsed(30.0, 27.0));
  EXPECT_TRUE(sm::is_collapsed(30.0, 28.0, 1.0));
  EXPECT_TRUE(sm::is_collapsed(inf, 40.0));
  EXPECT_FALSE(sm::is_collapsed(40.0, inf));
  EXPECT_FALSE(sm::is_collapsed(inf, inf));
}
