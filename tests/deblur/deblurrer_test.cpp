// samdeblur::Deblurrer and tiled inference (deblur/deblurrer.h, deblur/tiling.h).
#include "samdeblur/deblur/deblurrer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "samdeblur/deblur/tiling.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/io/image.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/metrics/psnr_ssim.h"
#include "samdeblur/models/execution.h"
#include "support/test_support.h"
#include "support/tiny_networks.h"

namespace {

namespace deblur = samdeblur::deblur;
namespace io = samdeblur::io;
namespace models = samdeblur::models;
using samdeblur::Deblurrer;

std::string eval_checkpoint(const std::string& name) {
  return samdeblur::test::data_path("eval/checkpoints/" + name + ".pth");
}

// A width-8 network of `type` with seeded random weights saved to dir/<type>.pth.
std::string random_checkpoint(const samdeblur::test::TempDir& dir, const std::string& type) {
  models::NetworkOptions o = samdeblur::test::tiny_network_options(type);
  o.train_size = {1, 3, 32, 32};
  torch::manual_seed(7);
  const auto net = models::build_network(o);
  io::StateDict sd;
  for (const auto& p : net->named_parameters()) sd.emplace_back(p.key(), p.value().detach());
  const std::string path = (dir / (type + ".pth")).string();
  io::save_state_dict_file(path, sd);
  return path;
}

cv::Mat photo(int h, int w) {
  cv::Mat img = samdeblur::test::ramp_image(h, w);
  cv::Mat noise(h, w, CV_8UC3);
  cv::randu(noise, 0, 40);
  return img + noise;
}

}  // namespace

TEST(Tiling, StartsCoverTheAxisWithTheOverlap) {
  EXPECT_EQ(deblur::tile_starts(100, 128, 16), std::vector<int64_t>{0});
  EXPECT_EQ(deblur::tile_starts(100, 0, 16), std::vector<int64_t>{0});
  for (int64_t n : {129, 200, 255, 256, 1000, 4000}) {
    const auto s = deblur::tile_starts(n, 128, 32);
    ASSERT_GE(s.size(), 2u) << n;
    EXPECT_EQ(s.front(), 0);
    EXPECT_EQ(s.back(), n - 128);
    for (std::size_t k = 1; k < s.size(); ++k) {
      EXPECT_GE(s[k - 1] + 128 - s[k], 32) << "n " << n << " tile " << k;  // overlap kept
      EXPECT_GT(s[k], s[k - 1]);
    }
    // The fewest tiles: one less would leave less than the overlap.
    EXPECT_EQ(static_cast<int64_t>(s.size()), (n - 32 + 95) / 96) << n;
  }
}

// Aligned starts (infer_tiled: the network's padding multiple) keep each tile on the whole
// image's down-sampling grid; misaligned 512 px tiles measured 27 dB against the whole image
// where aligned ones reach 60 dB (README, "Tiles").
TEST(Tiling, AlignedStartsAreMultiplesAndKeepTheOverlap) {
  for (const int64_t n : {513, 1000, 1024, 1365, 1536, 2048, 6000}) {
    for (const auto& [tile, overlap] : std::vector<std::pair<int64_t, int64_t>>{
             {512, 64}, {512, 32}, {512, 128}, {384, 64}, {256, 64}, {768, 128}}) {
      SCOPED_TRACE(fmt::format("n {} tile {} overlap {}", n, tile, overlap));
      const auto s = deblur::tile_starts(n, tile, overlap, 16);
      if (n <= tile) {
        EXPECT_EQ(s, std::vector<int64_t>{0});
        continue;
      }
      ASSERT_GE(s.size(), 2u);
      EXPECT_EQ(s.front(), 0);
      for (const int64_t start : s) EXPECT_EQ(start % 16, 0);
      EXPECT_GE(s.back() + tile, n);       // the last tile reaches the end
      EXPECT_LT(s.back() + tile - 16, n);  // and is at most 15 px short of a tile
      for (std::size_t k = 1; k < s.size(); ++k) {
        EXPECT_GT(s[k], s[k - 1]);
        EXPECT_GE(s[k - 1] + tile - s[k], overlap);  // neighbours share the overlap
      }
    }
  }
  EXPECT_EQ(deblur::tile_starts(500, 512, 64, 16), std::vector<int64_t>{0});
  EXPECT_EQ(deblur::tile_starts(100, 40, 30, 16), deblur::tile_starts(100, 40, 30));  // gap < 16
}

TEST(Tiling, RampWeightsArePositiveAndRiseOverTheOverlap) {
  const auto w = deblur::ramp_weights(10, 8, 30, 4);  // a middle tile: ramps on both sides
  EXPECT_NEAR(w[0].item<float>(), 0.125, 1e-6);
  EXPECT_NEAR(w[3].item<float>(), 0.875, 1e-6);
  EXPECT_EQ(w[4].item<float>(), 0.875f);
  EXPECT_EQ(w[7].item<float>(), 0.125f);
  const auto first = deblur::ramp_weights(0, 8, 30, 4);  // no neighbour on the left
  EXPECT_EQ(first[0].item<float>(), 1.0f);
  EXPECT_GT(first.min().item<float>(), 0.0f);
  EXPECT_THROW((deblur::TileOptions{8, 0}.validate()), samdeblur::ConfigError);
  EXPECT_THROW((deblur::TileOptions{64, 64}.validate()), samdeblur::ConfigError);
}

TEST(Tiling, OneTileIsExactlyTheWholeImagePath) {
  const samdeblur::test::TempDir tmp("tiling");
  Deblurrer::Options o;
  o.checkpoint = random_checkpoint(tmp, "NAFNet");
  o.tlc = false;
  o.tiles = {64, 16};
  Deblurrer tiled(o);
  o.tiles.tile = 0;
  Deblurrer whole(o);
  const cv::Mat img = photo(48, 64);
  const cv::Mat a = tiled.deblur(img), b = whole.deblur(img);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
}

namespace {

// A per-pixel "network": tiling must not change its output at all.
class PointwiseNet : public models::DeblurNetImpl {
 public:
  torch::Tensor forward(const torch::Tensor& input, const std::vector<models::SegMasks>&) override {
    return torch::sigmoid(input * 3.0 - 1.0);
  }
  bool needs_masks() const override { return false; }
  int64_t input_channels() const override { return 3; }
  const models::NetworkOptions& options() const override { return options_; }

 private:
  models::NetworkOptions options_;
};

}  // namespace

TEST(Tiling, BlendingReassemblesAPointwiseNetworkExactly) {
  PointwiseNet net;
  samdeblur::dataset::Sample s;
  s.name = "ramp";
  s.lq = io::image_to_tensor(photo(150, 230));
  const torch::Tensor whole = samdeblur::eval::infer(net, s, {}, torch::kCPU);
  for (const auto& t : {deblur::TileOptions{64, 16}, deblur::TileOptions{100, 0},
                        deblur::TileOptions{32, 31}, deblur::TileOptions{160, 20}}) {
    SCOPED_TRACE(t.tile);
    samdeblur::test::expect_close(deblur::infer_tiled(net, s, t, torch::kCPU), whole, 1e-5,
                                  "tiled pointwise output");
  }
}

// The tiled output of real networks stays near the whole-image one; tiny
// random networks (width 8, 64 px tiles) measured 24.2 dB (NAFNet, NAFNetLocal)
// and 21.9 dB (SegNAFNet). README "Deblurring photos" has the GoPro-size figures.
TEST(Tiling, TiledOutputIsCloseToTheWholeImage) {
  const samdeblur::test::TempDir tmp("tiling");
  for (const std::string type : {"NAFNet", "NAFNetLocal", "SegNAFNet"}) {
    SCOPED_TRACE(type);
    Deblurrer::Options o;
    o.checkpoint = random_checkpoint(tmp, type);
    o.network = samdeblur::test::tiny_network_options(type);
    o.network->train_size = {1, 3, 32, 32};
    o.masks.type = "superpixels";
    o.masks.superpixels.region_size = 24;
    o.tiles = {64, 24};
    Deblurrer tiled(o);
    o.tiles.tile = 0;
    Deblurrer whole(o);
    const cv::Mat img = photo(150, 190);
    const cv::Mat a = tiled.deblur(img), b = whole.deblur(img);
    const double psnr = samdeblur::metrics::calculate_psnr(a, b, 0);
    EXPECT_GT(psnr, 20.0);
  }
}

TEST(Deblurrer, GroupedLabelsEqualTheGroupedMasksPath) {
  torch::manual_seed(1);
  const torch::Tensor values = torch::tensor({0, 3, 4, 7, 200, 255}, torch::kUInt8);
  const torch::Tensor idx = torch::randint(0, 6, {23, 31}, torch::kInt64);
  const torch::Tensor grey = values.index({idx}).contiguous();
  const cv::Mat lm(23, 31, CV_8UC1, grey.data_ptr<uint8_t>());
  const auto expected =
      models::SegMasks::from_masks(samdeblur::masks::grouped_masks(lm), 1.0 / 255.0);
  const auto got = deblur::grouped_labels(lm, 1.0 / 255.0);
  ASSERT_TRUE(expected.labels.defined());
  EXPECT_EQ(got.num_masks, expected.num_masks);
  EXPECT_EQ(got.value, expected.value);
  EXPECT_TRUE(torch::equal(got.labels, expected.labels));
}

TEST(Deblurrer, MaskNetworkWithoutMaskSourceIsAnError) {
  Deblurrer::Options o;
  o.checkpoint = eval_checkpoint("SegNAFNet");
  const std::string msg =
      samdeblur::test::error_of<samdeblur::ConfigError>([&] { Deblurrer d(o); });
  EXPECT_NE(msg.find("needs SAM masks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--sam"), std::string::npos) << msg;
  o.checkpoint = eval_checkpoint("MaskNAFNet");  // CAT needs them too
  EXPECT_THROW(Deblurrer{o}, samdeblur::ConfigError);
}

TEST(Deblurrer, InMemoryFileAndLabelMapVariantsAgree) {
  const samdeblur::test::TempDir tmp("deblurrer");
  const std::string image = samdeblur::test::data_path("eval/input/img_b.png");
  for (const std::string name : {"SegNAFNet", "MaskNAFNet"}) {
    SCOPED_TRACE(name);
    Deblurrer::Options o;
    o.checkpoint = eval_checkpoint(name);
    o.masks.type = "superpixels";
    o.masks.superpixels.region_size = 12;
    o.mask_cache_dir = (tmp / "cache").string();
    Deblurrer d(o);
    EXPECT_TRUE(d.needs_masks());
    const cv::Mat bgr = io::read_image_bgr(image);
    const cv::Mat before = bgr.clone();
    const cv::Mat in_memory = d.deblur(bgr);
    EXPECT_EQ(cv::norm(bgr, before, cv::NORM_INF), 0.0);  // input not modified
    const auto from_file = d.deblur_file(image);
    EXPECT_EQ(cv::norm(in_memory, from_file.image, cv::NORM_INF), 0.0);
    ASSERT_FALSE(from_file.label_map.empty());
    const auto given = d.deblur(bgr, from_file.label_map);
    EXPECT_EQ(cv::norm(in_memory, given.image, cv::NORM_INF), 0.0);
    // Different masks give a different output: the masks are used.
    const cv::Mat flat(bgr.size(), CV_8UC1, cv::Scalar(0));
    EXPECT_GT(cv::norm(in_memory, d.deblur(bgr, flat).image, cv::NORM_INF), 0.0);
    EXPECT_EQ(d.deblur_file(image).label_map.size(), bgr.size());
    EXPECT_GE(d.mask_cache_hits(), 1);  // the second deblur_file hit the cache
  }
}

// The execution options reach the network: channels-last (+ fused kernels) stays within
// float32 rounding of the exact path (at most one grey level after quantisation), bf16
// runs close to it where the CPU has native bf16 and is refused by name elsewhere.
TEST(Deblurrer, ExecutionOptionsReachTheNetwork) {
  const std::string image = samdeblur::test::data_path("eval/input/img_b.png");
  const cv::Mat bgr = io::read_image_bgr(image);
  Deblurrer::Options o;
  o.checkpoint = eval_checkpoint("NAFNet");
  o.tiles.tile = 0;
  EXPECT_EQ(o.memory_format, "auto");  // channels_last on the CPU
  const cv::Mat by_default = Deblurrer(o).deblur(bgr);
  o.memory_format = "channels_last";
  EXPECT_EQ(cv::norm(by_default, Deblurrer(o).deblur(bgr), cv::NORM_INF), 0.0);
  o.memory_format = "contiguous";
  const cv::Mat exact = Deblurrer(o).deblur(bgr);
  EXPECT_LE(cv::norm(exact, by_default, cv::NORM_INF), 1.0);
  o.memory_format = "planar";
  EXPECT_THROW(Deblurrer{o}, samdeblur::ConfigError);
  o.memory_format = "contiguous";
  o.precision = "bf16";
  if (models::cpu_supports_bf16()) {
    EXPECT_GE(cv::PSNR(exact, Deblurrer(o).deblur(bgr)), 35.0);
  } else {
    const auto message = samdeblur::test::error_of([&] { Deblurrer d(o); });
    EXPECT_NE(message.find("bf16"), std::string::npos) << message;
  }
}
