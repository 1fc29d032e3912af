// The evaluation path shared by sdb-eval and sdb-train's validation: the metric
// list, evaluate_sample() and DatasetAccumulator on known values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "samdeblur/eval/sample_metrics.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/mcr.h"
#include "samdeblur/metrics/psnr_ssim.h"

using namespace samdeblur;

namespace {

eval::ValOptions val_with(std::vector<metrics::MetricOptions> m, double threshold = 3.0) {
  eval::ValOptions v;
  v.metrics = std::move(m);
  v.mcr_threshold = threshold;
  return v;
}

// A record whose `collapsed` is decided as evaluate_sample() does.
eval::ImageRecord record(double psnr, double ssim, double psnr_input, double threshold = 3.0) {
  eval::ImageRecord r;
  r.metrics = {psnr, ssim};
  r.psnr_input = psnr_input;
  r.collapsed = metrics::is_collapsed(psnr_input, psnr, threshold);
  return r;
}

// A sample whose input, target and output differ by known constants.
dataset::Sample flat_sample(double gt_value, double lq_value) {
  dataset::Sample s;
  s.name = "flat";
  s.gt = torch::full({3, 6, 8}, gt_value);
  s.lq = torch::full({3, 6, 8}, lq_value);
  return s;
}

}  // namespace

TEST(MetricList, AddsPsnrFirstAndSsimLastWhenMissing) {
  EXPECT_EQ(eval::MetricList(val_with({})).names(), (std::vector<std::string>{"psnr", "ssim"}));
  const eval::MetricList l(
      val_with({{"ssim_y", "calculate_ssim", 0, true}, {"p", "calculate_psnr"}}));
  EXPECT_EQ(l.names(), (std::vector<std::string>{"ssim_y", "p"}));
  EXPECT_EQ(l.psnr_index(), 1u);
  EXPECT_THROW(eval::MetricList(val_with({{"x", "calculate_x"}})), ConfigError);
}

TEST(EvaluateSample, KnownPsnrInputAndCollapse) {
  // gt 100/255, input 110/255 (PSNR 20 log10(255/10)), output 120/255 (20 log10(255/20)).
  const dataset::Sample s = flat_sample(100.0 / 255, 110.0 / 255);
  const cv::Mat out = io::tensor_to_image(torch::full({3, 6, 8}, 120.0 / 255));
  const double psnr_in = 20 * std::log10(255.0 / 10), psnr_out = 20 * std::log10(255.0 / 20);
  const eval::MetricList l(val_with({}, 3.0));
  const eval::ImageRecord r = eval::evaluate_sample(l, out, s);
  EXPECT_EQ(r.name, "flat");
  EXPECT_EQ(r.height, 6);
  EXPECT_EQ(r.width, 8);
  ASSERT_EQ(r.metrics.size(), 2u);
  EXPECT_NEAR(r.metrics[0], psnr_out, 1e-9);
  EXPECT_NEAR(r.psnr_input, psnr_in, 1e-9);
  EXPECT_EQ(r.metrics[1], metrics::calculate_ssim(out, io::tensor_to_image(s.gt), 0));
  EXPECT_TRUE(r.collapsed);  // 6.02 dB worse than the input
  EXPECT_FALSE(eval::evaluate_sample(eval::MetricList(val_with({}, 7.0)), out, s).collapsed);
}

TEST(DatasetAccumulator, MeansMcrAndJson) {
  eval::DatasetAccumulator acc(2);
  eval::ImageRecord a, b, c;
  a.metrics = {30, 0.9};
  a.psnr_input = 28;
  b.metrics = {24, 0.7};
  b.psnr_input = 27.5;
  b.collapsed = true;
  c.metrics = {27, 0.8};
  c.psnr_input = 26.5;
  for (const auto* r : {&a, &b, &c}) acc.add(*r);
  EXPECT_EQ(acc.count(), 3);
  EXPECT_DOUBLE_EQ(acc.mean(0), 27.0);
  EXPECT_DOUBLE_EQ(acc.mean(1), 0.8);
  EXPECT_DOUBLE_EQ(acc.mean_psnr_input(), 82.0 / 3);
  EXPECT_DOUBLE_EQ(acc.mcr(), 1.0 / 3);
  const std::vector<double> sums{81, 2.4, 82, 1, 3};
  ASSERT_EQ(acc.sums().size(), sums.size());
  for (std::size_t k = 0; k < sums.size(); ++k) EXPECT_DOUBLE_EQ(acc.sums()[k], sums[k]) << k;
  const auto j = acc.json({"psnr", "ssim"});
  EXPECT_DOUBLE_EQ(j["psnr"].get<double>(), 27.0);
  EXPECT_DOUBLE_EQ(j["mcr"].get<double>(), 1.0 / 3);

  // One identical output: PSNR inf propagates into the mean, as in BasicSR.
  eval::ImageRecord d;
  d.metrics = {std::numeric_limits<double>::infinity(), 1.0};
  acc.add(d);
  EXPECT_EQ(acc.json({"psnr", "ssim"})["psnr"], "inf");
  EXPECT_EQ(eval::json_number(std::nan("")), "nan");
  EXPECT_EQ(eval::json_number(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(DatasetAccumulator, EmptyMeansAndMcrAreNan) {
  const eval::DatasetAccumulator acc(2);
  EXPECT_EQ(acc.count(), 0);
  EXPECT_TRUE(std::isnan(acc.mean(0)));
  EXPECT_TRUE(std::isnan(acc.mcr()));
  EXPECT_EQ(acc.json({"psnr", "ssim"})["mcr"], "nan");
}

TEST(DatasetAccumulator, McrKnownValues) {
  eval::DatasetAccumulator acc(2);
  acc.add(record(30.0, 0.9, 28.0));  // improved
  acc.add(record(24.0, 0.7, 27.5));  // 3.5 dB worse: collapsed
  acc.add(record(26.0, 0.8, 29.0));  // exactly 3 dB worse: not (strictly greater)
  EXPECT_EQ(acc.count(), 3);
  EXPECT_DOUBLE_EQ(acc.mean(0), 80.0 / 3);
  EXPECT_DOUBLE_EQ(acc.mean(1), 0.8);
  EXPECT_DOUBLE_EQ(acc.sums()[3], 1.0);  // collapsed images
  EXPECT_DOUBLE_EQ(acc.mcr(), 1.0 / 3.0);
}

TEST(DatasetAccumulator, InfinitePsnrMakesMeanInfiniteNotCollapsed) {
  // Reproduces the official plain sum: an identical output gives inf.
  eval::DatasetAccumulator acc(2);
  acc.add(record(30.0, 0.9, 25.0));
  acc.add(record(std::numeric_limits<double>::infinity(), 1.0, 25.0));
  EXPECT_TRUE(std::isinf(acc.mean(0)));
  EXPECT_DOUBLE_EQ(acc.mean(1), 0.95);
  EXPECT_DOUBLE_EQ(acc.mcr(), 0.0);
}
