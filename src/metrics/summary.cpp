#include "samdeblur/metrics/summary.h"

#include <cmath>

namespace samdeblur::metrics {

bool is_collapsed(double psnr_input, double psnr_output, double threshold_db) {
  return psnr_input - psnr_output > threshold_db;  // false for NaN differences
}

MetricSummary::MetricSummary(double collapse_threshold_db) : threshold_db_(collapse_threshold_db) {}

void MetricSummary::add(const std::string& name, double psnr, double ssim, double psnr_input) {
  ImageMetrics m;
  m.name = name;
  m.psnr = psnr;
  m.ssim = ssim;
  m.psnr_input = psnr_input;
  m.collapsed = !std::isnan(psnr_input) && is_collapsed(psnr_input, psnr, threshold_db_);
  entries_.push_back(std::move(m));
}

double MetricSummary::mean_psnr() const {
  if (entries_.empty()) return std::nan("");
  double sum = 0.0;
  for (const auto& e : entries_) sum += e.psnr;
  return sum / static_cast<double>(entries_.size());
}

double MetricSummary::mean_ssim() const {
  if (entries_.empty()) return std::nan("");
  double sum = 0.0;
  for (const auto& e : entries_) sum += e.ssim;
  return sum / static_cast<double>(entries_.size());
}

std::size_t MetricSummary::collapsed_count() const {
  std::size_t n = 0;
  for (const auto& e : entries_) n += e.collapsed ? 1 : 0;
  return n;
}

double MetricSummary::mcr() const {
  std::size_t known = 0;
  for (const auto& e : entries_) known += std::isnan(e.psnr_input) ? 0 : 1;
  if (known == 0) return std::nan("");
  return static_cast<double>(collapsed_count()) / static_cast<double>(known);
}

}  // namespace samdeblur::metrics
