// The metric table (metric.h).
#include "samdeblur/metrics/metric.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>

#include "samdeblur/core/error.h"
#include "samdeblur/metrics/psnr_ssim.h"

namespace samdeblur::metrics {
namespace {

using ComputeFn = std::function<double(const MetricOptions&, const cv::Mat&, const cv::Mat&)>;

double psnr(const MetricOptions& m, const cv::Mat& a, const cv::Mat& b) {
  return calculate_psnr(a, b, m.crop_border, m.test_y_channel);
}

double ssim(const MetricOptions& m, const cv::Mat& a, const cv::Mat& b) {
  Ssim3dOptions o;
  if (m.ssim3d_precision == "float32") {
    o.mode = Gaussian3d::direct;
    o.dtype = torch::kFloat32;
  }
  return calculate_ssim(a, b, m.crop_border, m.test_y_channel, m.ssim3d, o);
}

struct Entry {
  const char* type;
  ComputeFn compute;
};

// The one list of metric types.
const std::vector<Entry>& table() {
  static const std::vector<Entry> t = {
      {"calculate_psnr", psnr},
      {"calculate_ssim", ssim},
  };
  return t;
}

class TableMetric : public Metric {
 public:
  TableMetric(MetricOptions options, ComputeFn fn)
      : Metric(std::move(options)), fn_(std::move(fn)) {}
  double compute(const cv::Mat& out_u8, const cv::Mat& gt_u8) const override {
    return fn_(options(), out_u8, gt_u8);
  }

 private:
  ComputeFn fn_;
};

}  // namespace

const std::vector<std::string>& metric_types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> v;
    for (const auto& e : table()) v.emplace_back(e.type);
    return v;
  }();
  return types;
}

bool is_metric_type(const std::string& type) {
  for (const auto& e : table())
    if (type == e.type) return true;
  return false;
}

MetricOptions parse_metric(config::Section& s, const std::string& name) {
  MetricOptions m;
  m.name = name;
  m.type = s.required<std::string>("type");
  if (!is_metric_type(m.type))
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: {}", s.source(),
                                  s.key_path("type"), m.type, fmt::join(metric_types(), ", ")));
  m.crop_border = s.get<int>("crop_border", 0);
  if (m.crop_border < 0)
    throw ConfigError(fmt::format("{}: {} must be >= 0", s.source(), s.key_path("crop_border")));
  m.test_y_channel = s.get<bool>("test_y_channel", false);
  if (m.type == "calculate_ssim") {
    m.ssim3d = s.get<bool>("ssim3d", true);
    m.ssim3d_precision = s.get<std::string>("ssim3d_precision", "float64");
    if (m.ssim3d_precision != "float64" && m.ssim3d_precision != "float32")
      throw ConfigError(fmt::format("{}: {} must be float64 or float32, got '{}'", s.source(),
                                    s.key_path("ssim3d_precision"), m.ssim3d_precision));
  }
  const std::string order = s.get<std::string>("input_order", "HWC");
  if (order != "HWC" && order != "CHW")
    throw ConfigError(
        fmt::format("{}: {} must be HWC or CHW", s.source(), s.key_path("input_order")));
  return m;
}

std::unique_ptr<Metric> make_metric(const MetricOptions& options) {
  for (const auto& e : table())
    if (options.type == e.type) return std::make_unique<TableMetric>(options, e.compute);
  throw ConfigError(fmt::format("metric '{}': type '{}' is not supported; valid: {}", options.name,
                                options.type, fmt::join(metric_types(), ", ")));
}

}  // namespace samdeblur::metrics
