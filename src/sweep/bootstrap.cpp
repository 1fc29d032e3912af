#include "samdeblur/sweep/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "samdeblur/core/error.h"

namespace samdeblur::sweep {

double percentile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto j = static_cast<std::size_t>(std::floor(pos));
  if (j + 1 >= sorted.size()) return sorted.back();
  const double f = pos - static_cast<double>(j);
  return sorted[j] + f * (sorted[j + 1] - sorted[j]);
}

BootstrapInterval bootstrap_mean(const std::vector<double>& values,
                                 const BootstrapOptions& options) {
  if (options.resamples < 1) throw Error("bootstrap: resamples must be at least 1");
  if (!(options.confidence > 0 && options.confidence < 1))
    throw Error("bootstrap: confidence must lie in (0, 1)");
  BootstrapInterval out;
  const std::size_t n = values.size();
  if (n == 0) {
    out.mean = out.low = out.high = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  double sum = 0;
  for (double v : values) sum += v;
  out.mean = sum / static_cast<double>(n);
  std::mt19937_64 rng(options.seed);
  std::vector<double> means(static_cast<std::size_t>(options.resamples));
  for (auto& m : means) {
    double s = 0;
    for (std::size_t k = 0; k < n; ++k) s += values[rng() % n];
    m = s / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  const double alpha = 1.0 - options.confidence;
  out.low = percentile_sorted(means, alpha / 2);
  out.high = percentile_sorted(means, 1.0 - alpha / 2);
  return out;
}

PairedComparison compare_cells(const CellResult& a, const CellResult& b,
                               const BootstrapOptions& options) {
  PairedComparison c;
  c.dataset = a.dataset;
  c.a = a.variant;
  c.b = b.variant;
  std::map<std::string, double> psnr_a;
  for (const auto& row : a.images) psnr_a[row.name] = row.psnr;
  std::vector<double> diffs;
  int64_t matched = 0;
  for (const auto& row : b.images) {
    const auto it = psnr_a.find(row.name);
    if (it == psnr_a.end()) continue;
    ++matched;
    if (!std::isfinite(row.psnr) || !std::isfinite(it->second)) continue;
    const double d = row.psnr - it->second;
    diffs.push_back(d);
    if (d > 0) ++c.b_better;
    if (d < 0) ++c.a_better;
  }
  c.n = static_cast<int64_t>(diffs.size());
  // Images of either cell left out: unmatched names and non-finite PSNRs.
  c.excluded = static_cast<int64_t>(psnr_a.size() + b.images.size()) - matched - c.n;
  c.diff = bootstrap_mean(diffs, options);
  return c;
}

}  // namespace samdeblur::sweep
