// The evaluation path shared by sdb-eval and sdb-train (sample_metrics.h).
#include "samdeblur/eval/sample_metrics.h"

#include <algorithm>
#include <cmath>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/mcr.h"
#include "samdeblur/metrics/realblur_align.h"

namespace samdeblur::eval {

MetricList::MetricList(const ValOptions& val)
    : mcr_threshold_(val.mcr_threshold), align_(val.align) {
  std::vector<metrics::MetricOptions> opts = val.metrics;
  auto has = [&](const std::string& type) {
    return std::any_of(opts.begin(), opts.end(), [&](const auto& m) { return m.type == type; });
  };
  if (!has("calculate_psnr")) opts.insert(opts.begin(), {"psnr", "calculate_psnr"});
  if (!has("calculate_ssim")) opts.push_back({"ssim", "calculate_ssim"});
  for (const auto& o : opts) metrics_.push_back(metrics::make_metric(o));
  for (std::size_t k = 0; k < opts.size(); ++k)
    if (opts[k].type == "calculate_psnr") {
      psnr_index_ = k;
      break;
    }
}

std::vector<std::string> MetricList::names() const {
  std::vector<std::string> out;
  for (const auto& m : metrics_) out.push_back(m->name());
  return out;
}

namespace {

// val.align realblur: one registration, RealBlur's scores (realblur_align.h).
void realblur_scores(const MetricList& metrics, const cv::Mat& output_u8, const cv::Mat& gt,
                     const cv::Mat& in, ImageRecord& rec) {
  metrics::RealBlurAlignment a;
  try {
    a = metrics::realblur_align(output_u8, gt);
  } catch (const Error& e) {
    throw Error(rec.name + ": " + e.what());
  }
  const double psnr = metrics::realblur_psnr(a), ssim = metrics::realblur_ssim(a);
  for (std::size_t k = 0; k < metrics.size(); ++k) {
    const std::string& type = metrics[k].options().type;
    if (type != "calculate_psnr" && type != "calculate_ssim")
      throw ConfigError("val.align realblur has no RealBlur score for metric type " + type);
    rec.metrics.push_back(type == "calculate_psnr" ? psnr : ssim);
  }
  rec.psnr_input = metrics::realblur_unaligned_psnr(in, gt);
}

}  // namespace

ImageRecord evaluate_sample(const MetricList& metrics, const cv::Mat& output_u8,
                            const dataset::Sample& sample) {
  const cv::Mat gt = io::tensor_to_image(sample.gt);
  const cv::Mat in = io::tensor_to_image(sample.lq.slice(0, 0, 3));
  ImageRecord rec;
  rec.name = sample.name;
  rec.height = sample.gt.size(1);
  rec.width = sample.gt.size(2);
  const std::size_t p = metrics.psnr_index();
  if (metrics.align() == metrics::Alignment::realblur) {
    realblur_scores(metrics, output_u8, gt, in, rec);
  } else {
    for (std::size_t k = 0; k < metrics.size(); ++k)
      rec.metrics.push_back(metrics[k].compute(output_u8, gt));
    rec.psnr_input = metrics[p].compute(in, gt);
  }
  rec.collapsed = metrics::is_collapsed(rec.psnr_input, rec.metrics[p], metrics.mcr_threshold());
  return rec;
}

DatasetAccumulator::DatasetAccumulator(std::size_t num_metrics)
    : num_metrics_(num_metrics), sums_(num_metrics + 3, 0.0) {}

void DatasetAccumulator::add(const ImageRecord& r) {
  for (std::size_t k = 0; k < num_metrics_; ++k) sums_[k] += r.metrics.at(k);
  sums_[num_metrics_] += r.psnr_input;
  sums_[num_metrics_ + 1] += r.collapsed ? 1 : 0;
  sums_[num_metrics_ + 2] += 1;
}

std::vector<double> DatasetAccumulator::means() const {
  std::vector<double> out;
  for (std::size_t k = 0; k < num_metrics_; ++k) out.push_back(mean(k));
  return out;
}

nlohmann::json DatasetAccumulator::json(const std::vector<std::string>& names) const {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t k = 0; k < num_metrics_; ++k) j[names.at(k)] = json_number(mean(k));
  j["psnr_input"] = json_number(mean_psnr_input());
  j["mcr"] = json_number(mcr());
  return j;
}

nlohmann::json json_number(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

}  // namespace samdeblur::eval
