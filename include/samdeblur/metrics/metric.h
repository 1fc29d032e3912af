#pragma once
// Metric registry: the `val.metrics.<name>` entries of the official configs
// (SAM-Deblur basicsr/metrics/__init__.py dispatches on `type`). One explicit
// table of known types (metric.cpp) is used by the YAML parser and by
// make_metric(); an unknown type is an error listing the valid ones (the
// official code raises on an unknown name; ours never falls back to SSIM).
//
// Adding a metric: one function computing it on uint8 BGR images and one
// entry in the table of metric.cpp (plus its option keys in parse_metric).
#include <opencv2/core.hpp>

#include <memory>
#include <string>
#include <vector>

#include "samdeblur/config/yaml_reader.h"

namespace samdeblur::metrics {

struct MetricOptions {
  std::string name;  // the YAML key (psnr, ssim, ...)
  std::string type;  // one of metric_types(): calculate_psnr | calculate_ssim
  int crop_border = 0;
  bool test_y_channel = false;
  bool ssim3d = true;  // calculate_ssim only; official default
  // ext, calculate_ssim with ssim3d: "float64" (default: exact value of the
  // official formula, separable filter, fast) or "float32" (the official
  // arithmetic: direct conv3d in float32, slow; digits depend on the backend).
  std::string ssim3d_precision = "float64";
};

// Parses `val.metrics.<name>` (the mapping `s`; its keys are marked used, the
// caller calls s.finish()). The type is checked against metric_types(); errors
// are ConfigError naming the file and the dotted key.
MetricOptions parse_metric(config::Section& s, const std::string& name);

// The known `type` values, in table order.
const std::vector<std::string>& metric_types();
bool is_metric_type(const std::string& type);

// One configured metric, computed on (H, W, 3) uint8 BGR images (tensor2img).
class Metric {
 public:
  virtual ~Metric() = default;
  const MetricOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  virtual double compute(const cv::Mat& out_u8, const cv::Mat& gt_u8) const = 0;

 protected:
  explicit Metric(MetricOptions options) : options_(std::move(options)) {}

 private:
  MetricOptions options_;
};

// Throws ConfigError "metric '<name>': type '<type>' is not supported; valid: ..."
// for an unknown type.
std::unique_ptr<Metric> make_metric(const MetricOptions& options);

}  // namespace samdeblur::metrics
