// sdb-bench helpers: the analytic FLOP count and the timing statistics.
#include "samdeblur/train/bench.h"

#include <gtest/gtest.h>

namespace tr = samdeblur::train;

TEST(BenchFlops, NafnetW32MatchesThePublishedMultiplyAdds) {
  const auto o = tr::nafnet_w32("NAFNet");
  // NAFNet-w32 (GoPro): 16 GMAC at 256x256 in the NAFNet paper.
  EXPECT_NEAR(tr::nafnet_conv_gflop(o, 256, 256), 31.912, 0.001);
  EXPECT_NEAR(tr::nafnet_conv_gflop(o, 720, 1280), 448.706, 0.001);
  // Padded to the U-Net's multiple of 16, as the network does.
  EXPECT_DOUBLE_EQ(tr::nafnet_conv_gflop(o, 250, 241), tr::nafnet_conv_gflop(o, 256, 256));
  // SegNAFNet's intro takes seg_channel more inputs: a little more work.
  EXPECT_GT(tr::nafnet_conv_gflop(tr::nafnet_w32("SegNAFNet"), 256, 256),
            tr::nafnet_conv_gflop(o, 256, 256));
}

TEST(BenchTiming, CountsWarmUpAndTimedRuns) {
  int calls = 0;
  const auto t = tr::time_runs([&] { ++calls; }, 2, 4, torch::kCPU);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(t.runs, 4);
  EXPECT_GE(t.median_ms, t.min_ms);
  EXPECT_GE(t.minor_faults, 0.0);
}
