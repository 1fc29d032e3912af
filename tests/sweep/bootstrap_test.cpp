// The paired bootstrap of sweep/bootstrap.h against an independent computation
// (written here from its documented definition) and against known statistics.
#include "samdeblur/sweep/bootstrap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace {

using samdeblur::sweep::BootstrapOptions;

// The documented algorithm, written independently: resample means with
// mt19937_64(seed) and index rng() % n; the percentile as numpy's "linear".
std::pair<double, double> reference_ci(const std::vector<double>& x, int64_t resamples,
                                       uint64_t seed, double confidence) {
  std::mt19937_64 rng(seed);
  const uint64_t n = x.size();
  std::vector<double> m;
  for (int64_t r = 0; r < resamples; ++r) {
    long double s = 0;
    std::vector<double> draw(n);
    for (uint64_t i = 0; i < n; ++i) draw[i] = x[rng() % n];
    for (double v : draw) s += v;
    m.push_back(static_cast<double>(s / n));
  }
  std::sort(m.begin(), m.end());
  auto q = [&](double p) {
    const double h = (m.size() - 1) * p;
    const double lo = m[static_cast<std::size_t>(std::floor(h))];
    const double hi = m[static_cast<std::size_t>(std::ceil(h))];
    return lo + (h - std::floor(h)) * (hi - lo);
  };
  return {q((1 - confidence) / 2), q((1 + confidence) / 2)};
}

std::vector<double> normal_sample(std::size_t n, double mean, double sd, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(mean, sd);
  std::vector<double> out(n);
  for (auto& v : out) v = dist(gen);
  return out;
}

}  // namespace

TEST(SweepBootstrap, EqualsAnIndependentComputationOfTheDocumentedAlgorithm) {
  const auto x = normal_sample(57, 0.3, 1.2, 7);
  for (const uint64_t seed : {uint64_t{20240414}, uint64_t{1}}) {
    BootstrapOptions o;
    o.resamples = 2000;
    o.seed = seed;
    const auto got = samdeblur::sweep::bootstrap_mean(x, o);
    const auto [lo, hi] = reference_ci(x, o.resamples, seed, o.confidence);
    double mean = 0;
    for (double v : x) mean += v;
    mean /= x.size();
    EXPECT_NEAR(got.mean, mean, 1e-12);
    // Summation order may differ in the last bits only.
    EXPECT_NEAR(got.low, lo, 1e-12);
    EXPECT_NEAR(got.high, hi, 1e-12);
  }
}

TEST(SweepBootstrap, DefaultsAreTheDocumentedOnes) {
  const BootstrapOptions o;
  EXPECT_EQ(o.resamples, 10000);
  EXPECT_EQ(o.seed, 20240414u);
  EXPECT_DOUBLE_EQ(o.confidence, 0.95);
}

TEST(SweepBootstrap, IntervalMatchesTheNormalTheoryOnKnownData) {
  // n = 400 draws of N(0.5, 2): the 95 % interval of the mean is about
  // mean +- 1.96 * s / sqrt(n); the bootstrap's must agree within 10 %.
  const auto x = normal_sample(400, 0.5, 2.0, 11);
  const auto got = samdeblur::sweep::bootstrap_mean(x, BootstrapOptions{});
  double mean = 0, ss = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) ss += (v - mean) * (v - mean);
  const double se = std::sqrt(ss / (x.size() - 1) / x.size());
  EXPECT_LT(got.low, mean);
  EXPECT_GT(got.high, mean);
  EXPECT_NEAR(got.high - got.low, 2 * 1.96 * se, 0.1 * 2 * 1.96 * se);
  EXPECT_NEAR((got.low + got.high) / 2, mean, 0.1 * se);
  EXPECT_LT(got.low, 0.5);  // covers the true mean (a fixed seed: deterministic)
  EXPECT_GT(got.high, 0.5);
}

TEST(SweepBootstrap, ConstantDataGiveAPointAndNoDataGiveNaN) {
  const auto c = samdeblur::sweep::bootstrap_mean({1.5, 1.5, 1.5}, BootstrapOptions{});
  EXPECT_DOUBLE_EQ(c.mean, 1.5);
  EXPECT_DOUBLE_EQ(c.low, 1.5);
  EXPECT_DOUBLE_EQ(c.high, 1.5);
  const auto e = samdeblur::sweep::bootstrap_mean({}, BootstrapOptions{});
  EXPECT_TRUE(std::isnan(e.mean) && std::isnan(e.low) && std::isnan(e.high));
  BootstrapOptions bad;
  bad.resamples = 0;
  EXPECT_THROW(samdeblur::sweep::bootstrap_mean({1.0}, bad), samdeblur::Error);
}

TEST(SweepBootstrap, PercentileInterpolatesLinearly) {
  const std::vector<double> s = {1, 2, 4, 8};
  EXPECT_DOUBLE_EQ(samdeblur::sweep::percentile_sorted(s, 0), 1);
  EXPECT_DOUBLE_EQ(samdeblur::sweep::percentile_sorted(s, 1), 8);
  EXPECT_DOUBLE_EQ(samdeblur::sweep::percentile_sorted(s, 0.5), 3);  // between 2 and 4
  EXPECT_DOUBLE_EQ(samdeblur::sweep::percentile_sorted(s, 0.25), 1.75);
}

TEST(SweepBootstrap, ComparisonPairsImagesByNameAndExcludesNonFinite) {
  samdeblur::sweep::CellResult a, b;
  a.variant = "A";
  b.variant = "B";
  a.dataset = b.dataset = "D";
  a.images = {{"x", 20, 0, 25, false}, {"y", 30, 0, 25, false}, {"z", INFINITY, 0, 25, false}};
  b.images = {{"y", 31, 0, 25, false},
              {"x", 19, 0, 25, false},
              {"z", 40, 0, 25, false},
              {"w", 10, 0, 25, true}};
  const auto c = samdeblur::sweep::compare_cells(a, b, BootstrapOptions{});
  EXPECT_EQ(c.a, "A");
  EXPECT_EQ(c.b, "B");
  EXPECT_EQ(c.n, 2);
  EXPECT_EQ(c.excluded, 2);            // z (inf) and w (only in B)
  EXPECT_DOUBLE_EQ(c.diff.mean, 0.0);  // (+1 - 1) / 2
  EXPECT_EQ(c.b_better, 1);
  EXPECT_EQ(c.a_better, 1);
  EXPECT_GE(c.diff.low, -1.0);
  EXPECT_LE(c.diff.high, 1.0);
}
