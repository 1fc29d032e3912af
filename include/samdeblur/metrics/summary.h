#pragma once
// Per-image metric accumulation for an evaluation run, with SAM-Deblur's
// Mode Collapse Rate (README of HPLQAQ/SAM-Deblur): an image "collapses" when
// PSNR(blurred input, gt) - PSNR(deblurred output, gt) > 3 dB.
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace samdeblur::metrics {

// psnr_input - psnr_output > threshold_db. IEEE semantics with infinite
// PSNRs: input inf and output finite -> collapsed; output inf -> not; both
// inf (inf - inf = NaN) -> not collapsed; any NaN -> not collapsed.
bool is_collapsed(double psnr_input, double psnr_output, double threshold_db = 3.0);

struct ImageMetrics {
  std::string name;
  double psnr = 0.0;
  double ssim = 0.0;
  // PSNR of the blurred input against the ground truth; NaN when unknown
  // (the image then does not count towards the MCR).
  double psnr_input = std::numeric_limits<double>::quiet_NaN();
  bool collapsed = false;
};

// Means are plain sums divided by the count, as the official dist_validation
// does (it sums Python floats), so one infinite PSNR (an output identical to
// its ground truth) makes mean_psnr() +inf; that is reproduced on purpose.
// The official additionally rounds each sum to float32 before dividing
// (torch.tensor(sum).float()); we keep float64 (differs by < 1e-7 relative).
class MetricSummary {
 public:
  explicit MetricSummary(double collapse_threshold_db = 3.0);

  void add(const std::string& name, double psnr, double ssim,
           double psnr_input = std::numeric_limits<double>::quiet_NaN());

  std::size_t count() const { return entries_.size(); }
  // NaN when empty.
  double mean_psnr() const;
  double mean_ssim() const;
  // Collapsed images / images with a known psnr_input; NaN when there are none.
  double mcr() const;
  std::size_t collapsed_count() const;
  double collapse_threshold_db() const { return threshold_db_; }
  const std::vector<ImageMetrics>& entries() const { return entries_; }

 private:
  double threshold_db_;
  std::vector<ImageMetrics> entries_;
};

}  // namespace samdeblur::metrics
