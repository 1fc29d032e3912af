// PSNR / SSIM against the official SAM-Deblur code's values in
// tests/data/metrics/expected.json (scripts/make_metric_fixtures.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "support/test_support.h"

namespace sm = samdeblur::metrics;
using nlohmann::json;

namespace {

const std::string kDir = samdeblur::test::data_path("metrics/");
constexpr const char* kRegenerate =
    "regenerate with: PYTHONPATH=/tmp/ref/sam-deblur /usr/bin/python3 "
    "scripts/make_metric_fixtures.py";

const json& expected() {
  static const json j = [] {
    json parsed = samdeblur::test::load_json_fixture("metrics/expected.json", kRegenerate);
    if (parsed.at("format_version").get<int>() != 1) {
      throw std::runtime_error(std::string("expected.json format mismatch; ") + kRegenerate);
    }
    return parsed;
  }();
  return j;
}

cv::Mat load(const std::string& file, int channels) {
  return samdeblur::io::read_image_bgr(kDir + file, channels == 1);
}

// Relative 1e-6, with an absolute floor of 1e-7 for values near zero (the
// official _ssim_3d runs in float32).
double tolerance(double v) { return std::max(1e-6 * std::abs(v), 1e-7); }

}  // namespace

struct Worst {
  double ratio = 0.0;
  std::string label;
  void update(double got, double want, double tol, const std::string& l) {
    if (std::abs(got - want) / tol > ratio) {
      ratio = std::abs(got - want) / tol;
      label = l;
    }
  }
};

double value_of(const json& c, const char* key) {
  return c.at(key).is_null() ? std::numeric_limits<double>::infinity() : c.at(key).get<double>();
}

// Every official case; the _ssim_3d cases twice: our default (float64,
// separable) against the official code run in float64 ("value_f64"), and the
// float32 direct conv3d mode against the official float32 run ("value").
TEST(PsnrSsim, MatchesOfficialGoldenValues) {
  const json& j = expected();
  int checked = 0;
  Worst worst;
  const sm::Ssim3dOptions official_f32{sm::Gaussian3d::direct, torch::kFloat32};
  for (const auto& [name, pair] : j.at("pairs").items()) {
    const int channels = pair.at("channels").get<int>();
    const cv::Mat out = load(pair.at("files").at("output").get<std::string>(), channels);
    const cv::Mat gt = load(pair.at("files").at("gt").get<std::string>(), channels);
    ASSERT_EQ(out.channels(), channels);
    for (const auto& c : pair.at("cases")) {
      const std::string metric = c.at("metric").get<std::string>();
      const int crop = c.at("crop_border").get<int>();
      const bool y = c.at("test_y_channel").get<bool>();
      const bool s3d = c.value("ssim3d", true);
      const std::string label = name + " " + metric + " crop=" + std::to_string(crop) +
                                " y=" + std::to_string(y) + " ssim3d=" + std::to_string(s3d);
      std::vector<std::pair<double, double>> got_want;  // (ours, official)
      if (metric == "psnr") {
        got_want.emplace_back(sm::calculate_psnr(out, gt, crop, y), value_of(c, "value"));
      } else if (c.contains("value_f64")) {
        got_want.emplace_back(sm::calculate_ssim(out, gt, crop, y, s3d), value_of(c, "value_f64"));
        got_want.emplace_back(sm::calculate_ssim(out, gt, crop, y, s3d, official_f32),
                              value_of(c, "value"));
      } else {
        got_want.emplace_back(sm::calculate_ssim(out, gt, crop, y, s3d), value_of(c, "value"));
      }
      for (std::size_t k = 0; k < got_want.size(); ++k) {
        const auto [got, want] = got_want[k];
        const std::string l = label + (k == 1 ? " (float32 direct)" : "");
        if (std::isinf(want)) {
          EXPECT_TRUE(std::isinf(got) && got > 0) << l << " got " << got;
        } else {
          EXPECT_NEAR(got, want, tolerance(want)) << l << "; " << kRegenerate;
          worst.update(got, want, tolerance(want), l);
        }
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 50);
  std::cout << "[ info ] " << checked << " values; worst error " << worst.ratio << " x tolerance ("
            << worst.label << ")\n";
}

TEST(PsnrSsim, InfinitePsnrIsEncodedAsInfinity) {
  // expected.json stores +inf as null; check the identical pair directly.
  const cv::Mat gt = load("noise_gt.png", 3);
  for (int crop : {0, 4}) {
    for (bool y : {false, true}) {
      EXPECT_TRUE(std::isinf(sm::calculate_psnr(gt, gt, crop, y)));
      EXPECT_NEAR(sm::calculate_ssim(gt, gt, crop, y, true), 1.0, 1e-6);
      EXPECT_NEAR(sm::calculate_ssim(gt, gt, crop, y, false), 1.0, 1e-12);
    }
  }
}

TEST(PsnrSsim, PeakValueQuirkUsesCroppedImage) {
  // dark_out has one 255 pixel in its corner, the rest is 0/1: with
  // crop_border=4 the official peak becomes 1, which we must reproduce.
  const cv::Mat out = load("dark_out.png", 3), gt = load("dark_gt.png", 3);
  const double p0 = sm::calculate_psnr(out, gt, 0, false);
  const double p4 = sm::calculate_psnr(out, gt, 4, false);
  EXPECT_GT(p0, 20.0);
  EXPECT_LT(p4, 10.0);  // 20 log10(1 / sqrt(mse)) with mse ~ 0.5
}

TEST(PsnrSsim, ShapeMismatchNamesBothShapes) {
  const cv::Mat a(10, 12, CV_8UC3, cv::Scalar::all(3));
  const cv::Mat b(10, 13, CV_8UC3, cv::Scalar::all(3));
  for (int which = 0; which < 2; ++which) {
    const std::string msg = samdeblur::test::error_of([&] {
      if (which == 0) {
        sm::calculate_psnr(a, b, 0, false);
      } else {
        sm::calculate_ssim(a, b, 0, false, true);
      }
    });
    EXPECT_NE(msg.find("(10, 12, 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(10, 13, 3)"), std::string::npos) << msg;
  }
  const cv::Mat g(10, 12, CV_8UC1, cv::Scalar::all(3));
  EXPECT_THROW(sm::calculate_psnr(a, g, 0, false), samdeblur::Error);
  EXPECT_THROW(sm::calculate_psnr(a, a, 5, false), samdeblur::Error);  // crops everything
  EXPECT_THROW(sm::calculate_psnr(a, a, -1, false), samdeblur::Error);
  EXPECT_THROW(sm::calculate_ssim(a, a, 0, false, false), samdeblur::Error);  // < 11 px
}

TEST(PsnrSsim, InputsAreNotModified) {
  const cv::Mat out = load("noise_out.png", 3), gt = load("noise_gt.png", 3);
  const cv::Mat out0 = out.clone(), gt0 = gt.clone();
  sm::calculate_psnr(out, gt, 4, true);
  sm::calculate_ssim(out, gt, 4, false, true);
  sm::calculate_ssim(out, gt, 4, false, false);
  sm::calculate_ssim(out, gt, 4, true, true);
  EXPECT_EQ(cv::norm(out, out0, cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(gt, gt0, cv::NORM_INF), 0.0);
}

TEST(Ssim3d, SeparableEqualsDirectConv3d) {
  torch::manual_seed(0);
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {23, 17, 3}, {9, 31, 1}, {40, 12, 5}, {3, 4, 2}, {1, 1, 1}}) {
    const torch::Tensor v = torch::rand(shape, torch::kFloat64) * 255.0;
    const torch::Tensor direct =
        sm::gaussian_filter_3d(v, {sm::Gaussian3d::direct, torch::kFloat64});
    for (int64_t band : {0, 1, 7}) {  // several bands, including 1-row bands
      const torch::Tensor sep =
          sm::gaussian_filter_3d(v, {sm::Gaussian3d::separable, torch::kFloat64, band});
      ASSERT_EQ(sep.sizes(), direct.sizes());
      EXPECT_LT((sep - direct).abs().max().item<double>(), 1e-10)
          << "shape " << v.sizes() << " band " << band;
      // float32 separable: within float32 rounding of values up to 255.
      const torch::Tensor sep32 =
          sm::gaussian_filter_3d(v, {sm::Gaussian3d::separable, torch::kFloat32, band});
      EXPECT_EQ(sep32.scalar_type(), torch::kFloat32);
      EXPECT_LT((sep32.to(torch::kFloat64) - direct).abs().max().item<double>(), 1e-4);
    }
  }
  // A constant volume stays constant (normalised kernel, replicate padding).
  const torch::Tensor c = torch::full({6, 7, 3}, 42.0, torch::kFloat64);
  EXPECT_LT((sm::gaussian_filter_3d(c) - 42.0).abs().max().item<double>(), 1e-12);
}

TEST(Ssim3d, DirectModeEqualsHandWrittenConv3d) {
  // The official formulation written out with torch::conv3d: weight =
  // outer(outer(g, g), g) in float64, replicate padding 5.
  torch::manual_seed(1);
  const torch::Tensor v = torch::rand({12, 14, 3}, torch::kFloat64);
  cv::Mat gk = cv::getGaussianKernel(11, 1.5, CV_64F);
  const torch::Tensor g = torch::from_blob(gk.ptr<double>(), {11}, torch::kFloat64).clone();
  const torch::Tensor w =
      (g.view({11, 1, 1}) * g.view({1, 11, 1}) * g.view({1, 1, 11})).view({1, 1, 11, 11, 11});
  namespace F = torch::nn::functional;
  const torch::Tensor padded = F::pad(
      v.view({1, 1, 12, 14, 3}), F::PadFuncOptions({5, 5, 5, 5, 5, 5}).mode(torch::kReplicate));
  const torch::Tensor ref = F::conv3d(padded, w).view({12, 14, 3});
  EXPECT_LT((sm::gaussian_filter_3d(v, {sm::Gaussian3d::direct, torch::kFloat64}) - ref)
                .abs()
                .max()
                .item<double>(),
            1e-14);
  EXPECT_LT((sm::gaussian_filter_3d(v) - ref).abs().max().item<double>(), 1e-12);
}

TEST(Ssim3d, SeparableSsimEqualsDirect) {
  torch::manual_seed(2);
  const torch::Tensor a = (torch::rand({45, 38, 3}, torch::kFloat64) * 255.0).round();
  const torch::Tensor b =
      (a + torch::randn({45, 38, 3}, torch::kFloat64) * 10.0).clamp(0, 255).round();
  const torch::Tensor a0 = a.clone();
  const double direct = sm::ssim_3d(a, b, 255.0, {sm::Gaussian3d::direct, torch::kFloat64});
  for (int64_t band : {0, 1, 10}) {
    const double sep = sm::ssim_3d(a, b, 255.0, {sm::Gaussian3d::separable, torch::kFloat64, band});
    EXPECT_NEAR(sep, direct, 1e-12) << "band " << band;
  }
  EXPECT_NEAR(sm::ssim_3d(a, a, 255.0), 1.0, 1e-12);
  EXPECT_TRUE(torch::equal(a, a0));
  EXPECT_THROW(sm::ssim_3d(a, b.slice(0, 1), 255.0), c10::Error);
}

TEST(Ssim3d, HdImageIsFast) {
  cv::Mat a(720, 1280, CV_8UC3), b(720, 1280, CV_8UC3);
  cv::RNG rng(5);
  rng.fill(a, cv::RNG::UNIFORM, 0, 256);
  rng.fill(b, cv::RNG::UNIFORM, 0, 256);
  const auto t0 = std::chrono::steady_clock::now();
  const double s = sm::calculate_ssim(a, b, 0, false, true);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ info ] 1280x720 ssim3d " << secs << " s, threads " << torch::get_num_threads()
            << "\n";
  EXPECT_TRUE(std::isfinite(s));
  EXPECT_LT(secs, 10.0);  // loose: the build machine is shared
}

TEST(ToYChannel, KnownValues) {
  // Pure white -> 235, black -> 16, as BT.601 studio range.
  cv::Mat img(1, 2, CV_8UC3);
  img.at<cv::Vec3b>(0, 0) = {255, 255, 255};
  img.at<cv::Vec3b>(0, 1) = {0, 0, 0};
  const cv::Mat y = sm::to_y_channel(img);
  ASSERT_EQ(y.type(), CV_32FC1);
  EXPECT_NEAR(y.at<float>(0, 0), 235.0f, 1e-3);
  EXPECT_NEAR(y.at<float>(0, 1), 16.0f, 1e-5);
}
