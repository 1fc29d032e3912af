// The metric registry: known types, values equal to the metric functions,
// unknown types rejected with the valid list (directly and from the YAML).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <opencv2/core.hpp>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/error.h"
#include "samdeblur/metrics/metric.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "support/test_support.h"

using namespace samdeblur;

namespace {

cv::Mat random_image(int seed) {
  cv::Mat m(24, 20, CV_8UC3);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

}  // namespace

TEST(MetricRegistry, ListsTheKnownTypes) {
  EXPECT_EQ(metrics::metric_types(),
            (std::vector<std::string>{"calculate_psnr", "calculate_ssim"}));
  EXPECT_TRUE(metrics::is_metric_type("calculate_ssim"));
  EXPECT_FALSE(metrics::is_metric_type("calculate_lpips"));
}

TEST(MetricRegistry, ComputesWhatTheFunctionsCompute) {
  const cv::Mat a = random_image(1), b = random_image(2);
  metrics::MetricOptions p{"psnr_y", "calculate_psnr", 2, true};
  const auto psnr = metrics::make_metric(p);
  EXPECT_EQ(psnr->name(), "psnr_y");
  EXPECT_DOUBLE_EQ(psnr->compute(a, b), metrics::calculate_psnr(a, b, 2, true));
  metrics::MetricOptions s{"ssim", "calculate_ssim", 1, false};
  EXPECT_DOUBLE_EQ(metrics::make_metric(s)->compute(a, b), metrics::calculate_ssim(a, b, 1, false));
  s.ssim3d = false;
  EXPECT_DOUBLE_EQ(metrics::make_metric(s)->compute(a, b),
                   metrics::calculate_ssim(a, b, 1, false, false));
}

TEST(MetricRegistry, UnknownTypeIsAnErrorListingTheValidOnes) {
  // Before the registry, any non-PSNR type silently computed SSIM.
  const std::string direct = test::error_of<ConfigError>([] {
    metrics::make_metric({"lpips", "calculate_lpips"});
  });
  EXPECT_NE(direct.find("lpips"), std::string::npos) << direct;
  EXPECT_NE(direct.find("calculate_lpips"), std::string::npos) << direct;
  EXPECT_NE(direct.find("valid: calculate_psnr, calculate_ssim"), std::string::npos) << direct;

  const std::string yaml = test::error_of<ConfigError>([] {
    config::Section lpips(YAML::Load("type: calculate_lpips"), "val.metrics.lpips", "metrics.yml");
    metrics::parse_metric(lpips, "lpips");
  });
  EXPECT_NE(yaml.find("metrics.yml"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("val.metrics.lpips.type"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("valid: calculate_psnr, calculate_ssim"), std::string::npos) << yaml;
}
