#pragma once
// The one evaluation path shared by sdb-eval (eval/evaluator.h) and the
// validation of sdb-train (train/trainer.h), mirroring SAM-Deblur's
// ImageRestorationModel.dist_validation: per image, every configured metric on
// the tensor2img images of output and target, PSNR(input, target) with the
// first PSNR metric's options, and whether the image collapsed (MCR); per
// dataset, plain sums divided by the count (as BasicSR, inf propagates).
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "samdeblur/dataset/paired.h"
#include "samdeblur/eval/config.h"
#include "samdeblur/metrics/metric.h"

namespace samdeblur::eval {

// The metrics of an evaluation: val.metrics in file order, with a default
// `psnr` (calculate_psnr) put first and a default `ssim` (calculate_ssim) put
// last when none of that type is configured.
class MetricList {
 public:
  explicit MetricList(const ValOptions& val);
  std::size_t size() const { return metrics_.size(); }
  const metrics::Metric& operator[](std::size_t k) const { return *metrics_[k]; }
  std::vector<std::string> names() const;
  // Index of the first calculate_psnr: the PSNR of the MCR and the progress bar.
  std::size_t psnr_index() const { return psnr_index_; }
  double mcr_threshold() const { return mcr_threshold_; }
  metrics::Alignment align() const { return align_; }

 private:
  std::vector<std::unique_ptr<metrics::Metric>> metrics_;
  std::size_t psnr_index_ = 0;
  double mcr_threshold_ = 3.0;
  metrics::Alignment align_ = metrics::Alignment::none;
};

struct ImageRecord {
  std::string name;
  int64_t height = 0, width = 0;
  std::vector<double> metrics;  // parallel to MetricList / DatasetResult::metric_names
  double psnr_input = 0;        // PSNR(blurry input, gt), same options as the primary PSNR
  bool collapsed = false;       // psnr_input - psnr > mcr_threshold
  double seconds = 0;           // network time for this image (set by the caller)
};

// One image: `output_u8` is tensor2img of the network output ((H, W, 3) uint8
// BGR, io::tensor_to_image); gt and input come from the sample's tensors the
// same way (the CAT variant's mask channel is dropped from the input).
// With val.align realblur, output is registered to gt once and every
// calculate_psnr / calculate_ssim metric is RealBlur's masked PSNR / SSIM of
// the aligned pair; psnr_input is RealBlur's unaligned PSNR of the input, as
// evaluation_RealBlur_ecc.py scores the blurry image (metrics/realblur_align.h).
ImageRecord evaluate_sample(const MetricList& metrics, const cv::Mat& output_u8,
                            const dataset::Sample& sample);

// Sums of one dataset's records. Sums are a flat vector so that the trainer's
// sharded validation can all-reduce them: [metric_0 .. metric_{n-1},
// psnr_input, collapsed, count].
class DatasetAccumulator {
 public:
  explicit DatasetAccumulator(std::size_t num_metrics);
  void add(const ImageRecord& record);
  std::vector<double>& sums() { return sums_; }
  const std::vector<double>& sums() const { return sums_; }
  double count() const { return sums_.back(); }
  double mean(std::size_t k) const { return sums_[k] / count(); }
  std::vector<double> means() const;
  double mean_psnr_input() const { return sums_[num_metrics_] / count(); }
  double mcr() const { return sums_[num_metrics_ + 1] / count(); }
  // {<metric name>: mean, ..., psnr_input, mcr}; non-finite values as strings
  // (json_number). Callers add their own count / dataset keys.
  nlohmann::json json(const std::vector<std::string>& names) const;

 private:
  std::size_t num_metrics_;
  std::vector<double> sums_;
};

// A double for JSON: finite as a number, else "nan", "inf" or "-inf".
nlohmann::json json_number(double v);

}  // namespace samdeblur::eval
