// sdb-bench helpers: the analytic FLOP count and the timing statistics.
#include "samdeblur/train/bench.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "samdeblur/core/blas.h"
#include "support/test_support.h"

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

// The apps run OpenBLAS with the kernels of this CPU (core/blas.h): where OpenBLAS
// fell back to a generic kernel in this test process (which does not re-execute),
// sdb-bench re-executes itself with OPENBLAS_CORETYPE and reports that kernel, and
// its --threads bounds the BLAS pool; SAMDEBLUR_KEEP_BLAS_KERNEL keeps the fallback.
TEST(BenchBlas, AppsRunTheBlasKernelsOfThisCpu) {
  namespace test = samdeblur::test;
  if (!test::app_built("sdb-bench")) GTEST_SKIP() << "apps not built";
  const std::string here = samdeblur::blas_kernel();
  if (here.empty()) GTEST_SKIP() << "no OpenBLAS in this process";
  const std::vector<std::string> args = {"--what",   "peak", "--peak-size", "32",
                                         "--repeat", "1",    "--threads",   "1"};
  const bool generic = samdeblur::blas_kernel_is_generic(here);
  const std::string fast = samdeblur::blas_kernel_for_cpu();
  const std::string expected =
      generic && !fast.empty() && !std::getenv("OPENBLAS_CORETYPE") ? fast : here;
  const auto run = test::run_app("sdb-bench", args);
  ASSERT_EQ(run.exit_code, 0) << run.output();
  EXPECT_NE(run.out.find("BLAS OpenBLAS " + expected + ", 1 threads"), std::string::npos)
      << run.out;
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    const auto kept = test::run_app(
        "sdb-bench", args, {{"OMP_NUM_THREADS", "1"}, {"SAMDEBLUR_KEEP_BLAS_KERNEL", "1"}});
    ASSERT_EQ(kept.exit_code, 0) << kept.output();
    EXPECT_NE(kept.out.find("BLAS OpenBLAS " + here + ", "), std::string::npos) << kept.out;
  }
}
