// Image I/O conventions against the official img_util values recorded in
// tests/data/metrics/expected.json (scripts/make_metric_fixtures.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace sio = samdeblur::io;
using nlohmann::json;
using samdeblur::test::TempDir;

namespace {

const std::string kDir = samdeblur::test::data_path("metrics/");

const json& expected() {
  static const json j = [] {
    std::ifstream in(kDir + "expected.json");
    if (!in) {
      throw std::runtime_error("missing " + kDir +
                               "expected.json; regenerate with "
                               "scripts/make_metric_fixtures.py");
    }
    return json::parse(in);
  }();
  return j;
}

torch::Tensor tensor_from(const json& node) {
  const auto shape = node.at("shape").get<std::vector<int64_t>>();
  std::vector<float> values;
  for (const auto& v : node.at("values")) values.push_back(static_cast<float>(v.get<double>()));
  return torch::tensor(values).view(shape);
}

// Exact comparison, reporting the worst element.
void expect_bitwise_equal(const torch::Tensor& got, const torch::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  ASSERT_EQ(got.scalar_type(), want.scalar_type());
  const torch::Tensor diff = (got.to(torch::kFloat64) - want.to(torch::kFloat64)).abs();
  const int64_t worst = diff.flatten().argmax().item<int64_t>();
  EXPECT_TRUE(torch::equal(got, want))
      << "worst flat index " << worst << ": got " << got.flatten()[worst].item<double>()
      << ", want " << want.flatten()[worst].item<double>();
}

torch::Tensor mat_u8_to_tensor(const cv::Mat& m) {
  return torch::from_blob(m.data, {m.rows, m.cols, m.channels()}, torch::kUInt8).clone();
}

}  // namespace

TEST(ImageIo, ImageToTensorMatchesOfficialImg2Tensor) {
  const json& node = expected().at("image_to_tensor");
  const cv::Mat bgr = sio::read_image_bgr(kDir + node.at("file").get<std::string>());
  ASSERT_EQ(bgr.type(), CV_8UC3);
  expect_bitwise_equal(sio::image_to_tensor(bgr), tensor_from(node));
}

TEST(ImageIo, MaskMatchesOfficialGrayscaleRead) {
  const json& node = expected().at("mask");
  const torch::Tensor mask = sio::read_mask_png(kDir + node.at("file").get<std::string>());
  expect_bitwise_equal(mask, tensor_from(node));
  const cv::Mat gray = sio::read_image_bgr(kDir + node.at("file").get<std::string>(), true);
  EXPECT_EQ(gray.type(), CV_8UC1);
  expect_bitwise_equal(sio::image_to_tensor(gray), mask);
}

TEST(ImageIo, TensorToImageMatchesOfficialTensor2Img) {
  const json& node = expected().at("tensor2img");
  ASSERT_GE(node.at("num_half_boundaries").get<int>(), 10);  // really hits x.5
  const torch::Tensor t = tensor_from(node);
  const torch::Tensor t0 = t.clone();
  const int64_t h = t.size(1), w = t.size(2);
  const auto bgr = node.at("bgr_hwc").get<std::vector<int64_t>>();
  const torch::Tensor want = torch::tensor(bgr).to(torch::kUInt8).view({h, w, 3});
  const cv::Mat img = sio::tensor_to_image(t);
  ASSERT_EQ(img.type(), CV_8UC3);
  expect_bitwise_equal(mat_u8_to_tensor(img), want);
  // (1, 3, H, W) and double / non-contiguous inputs give the same result.
  expect_bitwise_equal(mat_u8_to_tensor(sio::tensor_to_image(t.unsqueeze(0))), want);
  expect_bitwise_equal(mat_u8_to_tensor(sio::tensor_to_image(t.to(torch::kFloat64))), want);
  const torch::Tensor strided = t.permute({0, 2, 1}).contiguous().permute({0, 2, 1});
  expect_bitwise_equal(mat_u8_to_tensor(sio::tensor_to_image(strided)), want);
  EXPECT_TRUE(torch::equal(t, t0)) << "input modified";

  const auto gray = node.at("gray_hw").get<std::vector<int64_t>>();
  const torch::Tensor want_gray = torch::tensor(gray).to(torch::kUInt8).view({h, w, 1});
  const cv::Mat g1 = sio::tensor_to_image(t.slice(0, 0, 1));
  ASSERT_EQ(g1.type(), CV_8UC1);
  expect_bitwise_equal(mat_u8_to_tensor(g1), want_gray);
  expect_bitwise_equal(mat_u8_to_tensor(sio::tensor_to_image(t[0])), want_gray);  // (H, W)
}

TEST(ImageIo, RoundTripIsLossless) {
  const cv::Mat bgr = sio::read_image_bgr(kDir + "all_values_bgr.png");
  const cv::Mat back = sio::tensor_to_image(sio::image_to_tensor(bgr));
  EXPECT_EQ(cv::norm(bgr, back, cv::NORM_INF), 0.0);
  // Channel order: blue in the file is the last tensor channel.
  const torch::Tensor t = sio::image_to_tensor(bgr);
  EXPECT_FLOAT_EQ(t[2][0][5].item<float>(), bgr.at<cv::Vec3b>(0, 5)[0] / 255.0f);
  EXPECT_FLOAT_EQ(t[0][0][5].item<float>(), bgr.at<cv::Vec3b>(0, 5)[2] / 255.0f);
}

TEST(ImageIo, WriteImageAtomicRoundTrips) {
  const TempDir tmp("image_write");
  const fs::path& dir = tmp.path();
  const cv::Mat bgr = sio::read_image_bgr(kDir + "noise_out.png");
  const std::string path = (dir / "sub" / "x.png").string();
  sio::write_image_atomic(path, bgr);
  EXPECT_EQ(cv::norm(sio::read_image_bgr(path), bgr, cv::NORM_INF), 0.0);
  const cv::Mat gray = sio::read_image_bgr(kDir + "gray_out.png", true);
  sio::write_image_atomic(path, gray);  // replaces
  EXPECT_EQ(cv::norm(sio::read_image_bgr(path, true), gray, cv::NORM_INF), 0.0);
  try {
    sio::write_image_atomic((dir / "x.unknownext").string(), bgr);
    FAIL() << "expected FileError";
  } catch (const samdeblur::FileError& e) {
    EXPECT_NE(std::string(e.what()).find("x.unknownext"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sio::write_image_atomic((dir / "noext").string(), bgr), samdeblur::FileError);
}

TEST(ImageIo, UnreadableFilesNameThePath) {
  const TempDir tmp("image_bad");
  const fs::path& dir = tmp.path();
  fs::create_directories(dir);
  const std::string garbage = (dir / "garbage.png").string();
  std::ofstream(garbage) << "this is not a png";
  const std::string empty = (dir / "empty.png").string();
  std::ofstream{empty};
  for (const std::string& path : {garbage, empty, (dir / "missing.png").string()}) {
    for (bool gray : {false, true}) {
      try {
        sio::read_image_bgr(path, gray);
        FAIL() << "expected FileError for " << path;
      } catch (const samdeblur::FileError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_EQ(e.path(), path);
      }
    }
    EXPECT_THROW(sio::read_mask_png(path), samdeblur::FileError);
  }
}

TEST(ImageIo, RejectsUnsupportedInputs) {
  EXPECT_THROW(sio::image_to_tensor(cv::Mat()), samdeblur::Error);
  EXPECT_THROW(sio::image_to_tensor(cv::Mat(4, 4, CV_32FC3)), samdeblur::Error);
  EXPECT_THROW(sio::tensor_to_image(torch::zeros({2, 3, 4, 4})), c10::Error);
  EXPECT_THROW(sio::tensor_to_image(torch::zeros({5})), samdeblur::Error);
}
