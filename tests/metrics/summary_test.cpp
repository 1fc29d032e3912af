#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "samdeblur/metrics/summary.h"

namespace sm = samdeblur::metrics;

TEST(MetricSummary, MeansAndMcr) {
  sm::MetricSummary s;
  EXPECT_TRUE(std::isnan(s.mean_psnr()));
  EXPECT_TRUE(std::isnan(s.mcr()));
  s.add("a", 30.0, 0.9, 28.0);   // improved
  s.add("b", 24.0, 0.7, 27.5);   // 3.5 dB worse: collapsed
  s.add("c", 26.0, 0.8, 29.0);   // exactly 3 dB worse: not (strictly greater)
  s.add("d", 20.0, 0.5);         // no input PSNR: not in the MCR
  EXPECT_EQ(s.count(), 4u);
  EXPECT_DOUBLE_EQ(s.mean_psnr(), 25.0);
  EXPECT_DOUBLE_EQ(s.mean_ssim(), 0.725);
  EXPECT_EQ(s.collapsed_count(), 1u);
  EXPECT_DOUBLE_EQ(s.mcr(), 1.0 / 3.0);
  EXPECT_TRUE(s.entries()[1].collapsed);
}

TEST(MetricSummary, InfinitePsnrMakesMeanInfinite) {
  // Reproduces the official plain sum: an identical output gives inf.
  sm::MetricSummary s;
  s.add("a", 30.0, 0.9, 25.0);
  s.add("b", std::numeric_limits<double>::infinity(), 1.0, 25.0);
  EXPECT_TRUE(std::isinf(s.mean_psnr()));
  EXPECT_DOUBLE_EQ(s.mean_ssim(), 0.95);
  EXPECT_DOUBLE_EQ(s.mcr(), 0.0);
}

TEST(IsCollapsed, ThresholdAndInfinities) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(sm::is_collapsed(30.0, 26.9));
  EXPECT_FALSE(sm::is_collapsed(30.0, 27.0));
  EXPECT_TRUE(sm::is_collapsed(30.0, 28.0, 1.0));
  EXPECT_TRUE(sm::is_collapsed(inf, 40.0));
  EXPECT_FALSE(sm::is_collapsed(40.0, inf));
  EXPECT_FALSE(sm::is_collapsed(inf, inf));
}
