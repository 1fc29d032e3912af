// SAM model: key/shape parity with the official vit_b/l/h state_dicts, numeric parity of a tiny
// random-weight SAM with the official code (scripts/make_sam_fixtures.py), model-type
// detection and strict-loading errors.
#include "samdeblur/sam/sam_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <set>
#include <sstream>
#include <string>

#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/npy.h"
#include "samdeblur/sam/image_encoder.h"
#include "samdeblur/sam/predictor.h"
#include "support/test_support.h"

namespace samdeblur::sam {
namespace {

const std::string kHint =
    "regenerate with: PYTHONPATH=/tmp/ref/segment-anything /usr/bin/python3 "
    "scripts/make_sam_fixtures.py";

std::string data_path(const std::string& name) { return test::data_path("sam/model/" + name); }

// Fixtures of another FIXTURE_VERSION of make_sam_fixtures.py are rejected with the hint.
std::map<std::string, torch::Tensor> fixture(const std::string& name) {
  static const bool version_ok = [] {
    test::check_fixture_version("sam/model/meta.json", 1, kHint);
    return true;
  }();
  (void)version_ok;
  return test::load_npz_fixture("sam/model/" + name, kHint);
}

// The TINY config of make_sam_fixtures.py.
SamConfig tiny_config() {
  SamConfig c;
  c.model_type = "tiny";
  c.encoder_embed_dim = 32;
  c.encoder_depth = 2;
  c.encoder_num_heads = 2;
  c.encoder_global_attn_indexes = {1};
  c.image_size = 96;
  c.patch_size = 16;
  c.window_size = 4;
  c.prompt_embed_dim = 32;
  c.mlp_dim_decoder = 64;
  c.decoder_depth = 2;
  c.decoder_num_heads = 2;
  c.num_multimask_outputs = 3;
  c.iou_head_depth = 3;
  c.iou_head_hidden_dim = 32;
  c.mask_in_chans = 16;
  return c;
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol,
                  const std::string& what) {
  test::expect_close(actual, expected, atol, what + "; " + kHint);
}

// "key<TAB>d0,d1,..." lines of keys_<name>.txt.
std::map<std::string, std::vector<int64_t>> official_keys(const std::string& name) {
  std::ifstream in(data_path("keys_" + name + ".txt"));
  if (!in) throw std::runtime_error("missing keys_" + name + ".txt; " + kHint);
  std::map<std::string, std::vector<int64_t>> keys;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    std::vector<int64_t> shape;
    std::stringstream ss(line.substr(tab + 1));
    std::string d;
    while (std::getline(ss, d, ',')) shape.push_back(std::stoll(d));
    keys[line.substr(0, tab)] = shape;
  }
  return keys;
}

std::map<std::string, std::vector<int64_t>> model_keys(SamImpl& model) {
  std::map<std::string, std::vector<int64_t>> keys;
  for (const auto& p : model.named_parameters()) keys[p.key()] = p.value().sizes().vec();
  for (const auto& b : model.named_buffers())
    if (!non_persistent_buffers().count(b.key())) keys[b.key()] = b.value().sizes().vec();
  return keys;
}

class SamKeyParity : public ::testing::TestWithParam<std::string> {};

TEST_P(SamKeyParity, StateDictKeysAndShapesEqualOfficial) {
  const auto expected = official_keys(GetParam());
  Sam model(SamConfig::from_name(GetParam()));
  const auto actual = model_keys(*model);
  std::string problems;
  for (const auto& [k, s] : expected) {
    auto it = actual.find(k);
    if (it == actual.end())
      problems += "\n  missing " + k;
    else if (it->second != s)
      problems += "\n  shape of " + k;
  }
  for (const auto& [k, s] : actual)
    if (!expected.count(k)) problems += "\n  unexpected " + k;
  EXPECT_TRUE(problems.empty()) << GetParam() << ":" << problems;
  EXPECT_EQ(actual.size(), expected.size());
  // The buffers the reference does not save exist with the official values.
  EXPECT_TRUE(
      torch::allclose(model->pixel_std.flatten(), torch::tensor({58.395f, 57.12f, 57.375f})));
}

INSTANTIATE_TEST_SUITE_P(Official, SamKeyParity, ::testing::Values("vit_b", "vit_l", "vit_h"));

TEST(SamModel, TinyPredictorMatchesOfficial) {
  const auto fx = fixture("predict.npz");
  auto predictor = make_predictor(tiny_config(), data_path("tiny_sam.pth"), torch::kCPU);
  const auto& image = fx.at("image");  // (80, 120, 3) uint8 RGB
  cv::Mat mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC3,
              image.data_ptr());
  const cv::Mat before = mat.clone();
  predictor->set_image(mat);
  EXPECT_EQ(cv::norm(before, mat, cv::NORM_INF), 0.0) << "set_image must not modify its input";
  EXPECT_EQ(predictor->original_size(), cv::Size(120, 80));
  EXPECT_EQ(predictor->input_size(), cv::Size(fx.at("resized").size(1), fx.at("resized").size(0)));
  expect_close(predictor->image_embedding(), fx.at("embedding"), 1e-4, "embedding");

  auto coords = predictor->apply_coords(fx.at("points"));
  EXPECT_TRUE(torch::equal(coords, fx.at("points_t")));
  const auto labels = fx.at("labels");
  for (const std::string tag : {"multi", "single"}) {
    auto out = predictor->predict_torch(coords.to(torch::kFloat), labels, tag == "multi");
    expect_close(out.low_res, fx.at(tag + "_low_res"), 1e-4, tag + " low_res");
    expect_close(out.iou, fx.at(tag + "_iou"), 1e-4, tag + " iou");
    expect_close(out.masks, fx.at(tag + "_masks"), 1e-4, tag + " masks");
  }
  // float64 coordinates (the automatic mask generator's path) stay float64 until the encoding.
  auto f64 = predictor->predict_torch(coords, labels, true);
  expect_close(f64.low_res, fx.at("f64_low_res"), 1e-4, "f64 low_res");
  expect_close(f64.iou, fx.at("f64_iou"), 1e-4, "f64 iou");

  auto box = predictor->predict_prompts({}, {}, fx.at("boxes"), {}, true);
  expect_close(box.low_res, fx.at("box_low_res"), 1e-4, "box low_res");
  expect_close(box.iou, fx.at("box_iou"), 1e-4, "box iou");
  auto full = predictor->predict_prompts(coords.to(torch::kFloat), labels, fx.at("boxes"),
                                         fx.at("mask_input"), false);
  expect_close(full.low_res, fx.at("full_low_res"), 1e-4, "points+box+mask low_res");
  expect_close(full.iou, fx.at("full_iou"), 1e-4, "points+box+mask iou");
}

TEST(SamModel, DensePeAndNpzWeightsMatchPth) {
  const auto fx = fixture("predict.npz");
  Sam a(tiny_config()), b(tiny_config());
  load_sam_state_dict(*a, io::load_state_dict_file(data_path("tiny_sam.pth")), "tiny_sam.pth");
  io::StateDict sd;
  for (const auto& [k, t] : fixture("tiny_sam.npz")) sd.emplace_back(k, t);
  load_sam_state_dict(*b, sd, "tiny_sam.npz");
  for (const auto& p : a->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()])) << p.key();
  torch::NoGradGuard ng;
  expect_close(a->prompt_encoder->get_dense_pe(), fx.at("dense_pe"), 1e-5, "dense pe");
}

TEST(SamModel, RelPosInterpolationMatchesOfficial) {
  const auto fx = fixture("rel_pos.npz");
  int n = 0;
  for (int i = 0; fx.count("case" + std::to_string(i) + "_out"); ++i, ++n) {
    const std::string p = "case" + std::to_string(i) + "_";
    const auto sizes = fx.at(p + "sizes");
    auto out =
        get_rel_pos(sizes[0].item<int64_t>(), sizes[1].item<int64_t>(), fx.at(p + "rel_pos"));
    expect_close(out, fx.at(p + "out"), 1e-6, p);
  }
  EXPECT_GE(n, 4);
}

TEST(SamModel, WindowPartitionRoundTripsWithPadding) {
  auto x = torch::randn({2, 6, 7, 5});
  auto [w, pad] = window_partition(x, 4);
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{2 * 2 * 2, 4, 4, 5}));
  EXPECT_EQ(pad, (std::pair<int64_t, int64_t>(8, 8)));
  EXPECT_TRUE(torch::equal(window_unpartition(w, 4, pad, {6, 7}), x));
  // Window (0, 1) of batch 0 holds rows 0..3, columns 4..7 (column 7 is padding).
  EXPECT_TRUE(torch::equal(w[1].slice(1, 0, 3), x[0].slice(0, 0, 4).slice(1, 4, 7)));
  EXPECT_EQ(w[1].slice(1, 3, 4).abs().sum().item<float>(), 0.0f);
}

TEST(SamModel, EncoderInterpolatesAbsPosForOtherGrids) {
  Sam model(tiny_config());
  torch::NoGradGuard ng;
  auto out = model->image_encoder->forward(torch::randn({1, 3, 128, 112}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 32, 8, 7}));
}

io::StateDict fake_official(int64_t dim, int64_t depth) {
  io::StateDict sd;
  sd.emplace_back("image_encoder.patch_embed.proj.weight", torch::empty({dim, 3, 16, 16}));
  for (int64_t i = 0; i < depth; ++i)
    sd.emplace_back("image_encoder.blocks." + std::to_string(i) + ".norm1.weight",
                    torch::empty({dim}));
  return sd;
}

TEST(SamModel, DetectsModelTypeAndRejectsMismatch) {
  EXPECT_EQ(detect_model_type(fake_official(768, 12), "b.pth"), "vit_b");
  EXPECT_EQ(detect_model_type(fake_official(1024, 24), "l.pth"), "vit_l");
  EXPECT_EQ(detect_model_type(fake_official(1280, 32), "h.pth"), "vit_h");
  SamConfig autoc;
  autoc.model_type = "auto";
  autoc.mask_threshold = 0.5;
  const auto resolved = resolve_config(autoc, fake_official(1024, 24), "l.pth");
  EXPECT_EQ(resolved.model_type, "vit_l");
  EXPECT_EQ(resolved.encoder_global_attn_indexes, (std::vector<int64_t>{5, 11, 17, 23}));
  EXPECT_EQ(resolved.mask_threshold, 0.5);
  EXPECT_EQ(resolve_config(SamConfig::vit_h(), fake_official(1280, 32), "h.pth").model_type,
            "vit_h");
  try {
    resolve_config(SamConfig::vit_h(), fake_official(768, 12), "sam_vit_b.pth");
    FAIL() << "expected a model type mismatch";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("vit_h"), std::string::npos) << msg;
    EXPECT_NE(msg.find("vit_b"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sam_vit_b.pth"), std::string::npos) << msg;
  }
  EXPECT_THROW(detect_model_type(fake_official(768, 11), "x.pth"), Error);
  EXPECT_THROW(detect_model_type(io::StateDict{}, "x.pth"), Error);
  EXPECT_THROW(SamConfig::from_name("vit_x"), Error);
  // A tiny (custom) config is not checked against official types; "auto" cannot detect it.
  EXPECT_THROW(make_predictor(
                   [] {
                     SamConfig c;
                     c.model_type = "auto";
                     return c;
                   }(),
                   data_path("tiny_sam.pth"), torch::kCPU),
               Error);
}

TEST(SamModel, StrictLoadListsEveryProblem) {
  auto sd = io::load_state_dict_file(data_path("tiny_sam.pth"));
  io::StateDict broken;
  for (auto [k, t] : sd) {
    if (k == "mask_decoder.iou_token.weight") continue;                           // missing
    if (k == "image_encoder.blocks.0.attn.rel_pos_h") t = torch::zeros({5, 16});  // mis-shaped
    broken.emplace_back(k, t);
  }
  broken.emplace_back("mask_decoder.extra.weight", torch::zeros({2}));  // unexpected
  Sam model(tiny_config());
  try {
    load_sam_state_dict(*model, broken, "broken.pth");
    FAIL() << "strict loading accepted a broken checkpoint";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* s : {"broken.pth", "mask_decoder.iou_token.weight",
                          "image_encoder.blocks.0.attn.rel_pos_h", "mask_decoder.extra.weight"})
      EXPECT_NE(msg.find(s), std::string::npos) << s << " not in: " << msg;
  }
  // Checkpoints that do contain pixel_mean / pixel_std (re-saved ones) load too.
  auto with_pixels = sd;
  with_pixels.emplace_back("pixel_mean", torch::full({3, 1, 1}, 1.0f));
  with_pixels.emplace_back("pixel_std", torch::full({3, 1, 1}, 2.0f));
  load_sam_state_dict(*model, with_pixels, "with_pixels.pth");
  EXPECT_EQ(model->pixel_std.sum().item<float>(), 6.0f);
}

// Half precision is a CUDA-only option; CPU builds skip.
TEST(SamModel, TinyPredictorHalfOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA not available";
  const auto fx = fixture("predict.npz");
  auto predictor = make_predictor(tiny_config(), data_path("tiny_sam.pth"), torch::kCUDA, true);
  const auto& image = fx.at("image");
  cv::Mat mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC3,
              image.data_ptr());
  predictor->set_image(mat);
  expect_close(predictor->image_embedding().cpu(), fx.at("embedding"), 5e-2, "half embedding");
  auto coords = predictor->apply_coords(fx.at("points"));
  auto out = predictor->predict_torch(coords, fx.at("labels"), true);
  EXPECT_EQ(out.low_res.scalar_type(), torch::kFloat);
  expect_close(out.low_res.cpu(), fx.at("multi_low_res"), 1e-1, "half low_res");
  expect_close(out.iou.cpu(), fx.at("multi_iou"), 5e-2, "half iou");
}

TEST(SamModel, PredictorErrorPaths) {
  auto predictor =
      make_predictor(tiny_config(), "", torch::kCPU, /*half=*/true);  // half ignored on CPU
  EXPECT_THROW(predictor->predict_torch(torch::zeros({1, 1, 2}), torch::ones({1, 1}), true), Error);
  EXPECT_THROW(predictor->set_image(cv::Mat(10, 10, CV_8UC1, cv::Scalar(0))), Error);
  predictor->set_image(cv::Mat(10, 20, CV_8UC3, cv::Scalar(10, 20, 30)));
  EXPECT_EQ(predictor->image_embedding().scalar_type(), torch::kFloat);
  EXPECT_EQ(predictor->input_size(), cv::Size(96, 48));
  EXPECT_THROW(predictor->predict_torch(torch::zeros({1, 2}), torch::ones({1, 1}), true), Error);
  auto out =
      predictor->predict_torch(torch::zeros({3, 1, 2}), torch::ones({3, 1}, torch::kInt), false);
  EXPECT_EQ(out.masks.sizes(), (std::vector<int64_t>{3, 1, 10, 20}));
  EXPECT_EQ(out.low_res.sizes(), (std::vector<int64_t>{3, 1, 24, 24}));
  EXPECT_EQ(out.iou.sizes(), (std::vector<int64_t>{3, 1}));
}

}  // namespace
}  // namespace samdeblur::sam

namespace samdeblur::sam {
namespace {

// Opt-in timing of the vit_b image encoder at 1024x1024 (random weights, CPU, InferenceMode):
//   SAMDEBLUR_SAM_BENCH=1 sdb-tests --gtest_filter=SamBench.*
// Compare with the official encoder under the same thread count (see the report in the commit).
TEST(SamBench, VitBEncoder1024) {
  if (!std::getenv("SAMDEBLUR_SAM_BENCH")) GTEST_SKIP() << "set SAMDEBLUR_SAM_BENCH=1 to run";
  Sam model(SamConfig::vit_b());
  model->eval();
  c10::InferenceMode guard;
  auto x = torch::randn({1, 3, 1024, 1024});
  model->image_encoder->forward(x);  // warm-up
  const int runs = 2;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor out;
  for (int i = 0; i < runs; ++i) out = model->image_encoder->forward(x);
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / runs;
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 256, 64, 64}));
  std::cout << "vit_b encoder 1024x1024: " << s << " s/forward, threads "
            << torch::get_num_threads() << "\n";
}

}  // namespace
}  // namespace samdeblur::sam
