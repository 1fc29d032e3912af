#pragma once
// Paired bootstrap of per-image PSNR differences (no anchor reports this).
//
// For two variants evaluated on the same images, d_i = PSNR_b(i) - PSNR_a(i)
// over the images (paired by name) both have with finite PSNRs; the images of
// either cell left out are counted in `excluded`. The mean of d is reported with a percentile
// bootstrap confidence interval, exactly:
//   rng = std::mt19937_64(seed)                 (a fresh generator per comparison)
//   for r in 0 .. resamples-1:  m_r = (1/n) sum_{k<n} d[rng() % n]
//   sort m; CI = (percentile(m, (1-c)/2), percentile(m, (1+c)/2)),
//   percentile(x, q) = x[j] + f (x[j+1] - x[j]) with j + f = q (R-1) (linear, numpy's default).
// Defaults: 10000 resamples, seed 20240414, c = 0.95. The modulo's bias is
// below n / 2^64, negligible.
#include <cstdint>
#include <string>
#include <vector>

#include "samdeblur/sweep/cell.h"

namespace samdeblur::sweep {

struct BootstrapOptions {
  int64_t resamples = 10000;
  uint64_t seed = 20240414;
  double confidence = 0.95;
};

struct BootstrapInterval {
  double mean = 0, low = 0, high = 0;  // NaN when there are no values
};

// The mean of `values` and its percentile bootstrap interval (see above).
BootstrapInterval bootstrap_mean(const std::vector<double>& values,
                                 const BootstrapOptions& options);

// Linear-interpolation percentile of sorted values, q in [0, 1].
double percentile_sorted(const std::vector<double>& sorted, double q);

struct PairedComparison {
  std::string dataset, a, b;  // difference b - a
  int64_t n = 0, excluded = 0;
  BootstrapInterval diff;
  int64_t b_better = 0, a_better = 0;  // images where b's PSNR is higher / lower
};

// Pairs the images of two cells of one dataset by name.
PairedComparison compare_cells(const CellResult& a, const CellResult& b,
                               const BootstrapOptions& options);

}  // namespace samdeblur::sweep
