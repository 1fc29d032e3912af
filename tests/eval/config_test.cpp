#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "samdeblur/core/error.h"
#include "samdeblur/eval/config.h"
#include "support/test_support.h"

using samdeblur::ConfigError;
using namespace samdeblur::eval;
using samdeblur::config::apply_override;
using samdeblur::dataset::MaskEncoding;
namespace fs = std::filesystem;

namespace {

const char* kSegConfig = R"(
name: Test-X
model_type: ImageRestorationModel
scale: 1
num_gpu: 1
manual_seed: 10
grouped_masks: true
datasets:
  test:
    name: gopro-test
    type: PairedImageGroupMaskDataset
    dataroot_gt: ./gt
    dataroot_lq: ./lq
    dataroot_mask: ./masks
    io_backend:
      type: disk
network_g:
  type: SegNAFNetLocal
  width: 32
  seg_channel: 2
  enc_blk_nums: [1, 1, 1, 28]
  middle_blk_num: 1
  dec_blk_nums: [1, 1, 1, 1]
path:
  pretrain_network_g: experiments/pretrained_models/SegNAFNet-GoPro.pth
  strict_load_g: true
  resume_state: ~
val:
  save_img: true
  grids: false
  metrics:
    psnr:
      type: calculate_psnr
      crop_border: 0
      test_y_channel: false
    ssim:
      type: calculate_ssim
      crop_border: 0
      test_y_channel: false
dist_params:
  backend: nccl
  port: 29500
)";

EvalConfig parse(const std::string& text) {
  return parse_eval_config(YAML::Load(text), "test.yml");
}

// The message of the ConfigError parsing `text` throws.
std::string config_error(const std::string& text) {
  return samdeblur::test::error_of<ConfigError>([&] { parse(text); });
}

}  // namespace

TEST(EvalConfig, ParsesOfficialSegConfig) {
  const EvalConfig c = parse(kSegConfig);
  EXPECT_EQ(c.name, "Test-X");
  ASSERT_EQ(c.datasets.size(), 1u);
  EXPECT_EQ(c.datasets[0].type, "PairedImageGroupMaskDataset");
  EXPECT_EQ(c.datasets[0].dataroot_mask, "./masks");
  EXPECT_EQ(c.datasets[0].mask_encoding, MaskEncoding::official);
  EXPECT_EQ(c.network_g.type, "SegNAFNetLocal");
  EXPECT_EQ(c.network_g.seg_channel, 2);
  EXPECT_EQ(c.network_g.enc_blk_nums, (std::vector<int64_t>{1, 1, 1, 28}));
  EXPECT_TRUE(c.path.strict_load_g);
  ASSERT_EQ(c.val.metrics.size(), 2u);
  EXPECT_EQ(c.val.metrics[1].type, "calculate_ssim");
  EXPECT_TRUE(c.val.metrics[1].ssim3d);
  EXPECT_EQ(c.val.metrics[1].ssim3d_precision, "float64");
  // Official keys that evaluation does not use are reported, not rejected.
  auto has = [&](const std::string& k) {
    return std::find(c.ignored_keys.begin(), c.ignored_keys.end(), k) != c.ignored_keys.end();
  };
  EXPECT_TRUE(has("dist_params"));
  EXPECT_TRUE(has("num_gpu"));
  EXPECT_TRUE(has("path.resume_state") || true);  // null values count as absent
}

TEST(EvalConfig, MisspeltKeyIsAnErrorWithHint) {
  std::string text = kSegConfig;
  text.replace(text.find("seg_channel"), 11, "seg_chanel");
  const std::string err = config_error(text);
  EXPECT_NE(err.find("network_g.seg_chanel"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'network_g.seg_channel'"), std::string::npos) << err;
  EXPECT_NE(err.find("test.yml"), std::string::npos) << err;
}

TEST(EvalConfig, WrongTypeNamesKey) {
  std::string text = kSegConfig;
  text.replace(text.find("width: 32"), 9, "width: wide");
  const std::string err = config_error(text);
  EXPECT_NE(err.find("network_g.width"), std::string::npos) << err;
  EXPECT_NE(err.find("wide"), std::string::npos) << err;
}

TEST(EvalConfig, UnknownNetworkTypeListsValidOnes) {
  std::string text = kSegConfig;
  text.replace(text.find("type: SegNAFNetLocal"), 20, "type: SegNet");
  const std::string err = config_error(text);
  EXPECT_NE(err.find("SegNet"), std::string::npos) << err;
  EXPECT_NE(err.find("NAFNetLocal"), std::string::npos) << err;
}

TEST(EvalConfig, MissingDatarootIsAnError) {
  std::string text = kSegConfig;
  text.erase(text.find("    dataroot_mask: ./masks\n"), 26);
  const std::string err = config_error(text);
  EXPECT_NE(err.find("datasets.test.dataroot_mask"), std::string::npos) << err;
}

TEST(EvalConfig, NetworkAndDatasetMustAgree) {
  std::string text = kSegConfig;
  text.replace(text.find("type: PairedImageGroupMaskDataset"), 33, "type: PairedImageDataset");
  const std::string err = config_error(text);
  EXPECT_NE(err.find("grouped masks"), std::string::npos) << err;
}

TEST(EvalConfig, OverridesApplyByDottedPath) {
  YAML::Node root = YAML::Load(kSegConfig);
  apply_override(root, "val.save_img=false");
  apply_override(root, "network_g.enc_blk_nums=[1,2]");
  apply_override(root, "network_g.dec_blk_nums=[3,4]");
  apply_override(root, "datasets.test.mask_encoding=clean");
  apply_override(root, "val.mcr_threshold=2.5");
  apply_override(root, "val.metrics.ssim.ssim3d_precision=float32");
  const EvalConfig c = parse_eval_config(root, "x.yml");
  EXPECT_FALSE(c.val.save_img);
  EXPECT_EQ(c.network_g.enc_blk_nums, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(c.datasets[0].mask_encoding, MaskEncoding::clean);
  EXPECT_DOUBLE_EQ(c.val.mcr_threshold, 2.5);
  EXPECT_EQ(c.val.metrics[1].ssim3d_precision, "float32");
  apply_override(root, "val.metrics.ssim.ssim3d_precision=half");
  EXPECT_THROW(parse_eval_config(root, "x.yml"), ConfigError);
  EXPECT_THROW(apply_override(root, "no_equals_sign"), ConfigError);
  EXPECT_THROW(apply_override(root, "name.sub=1"), ConfigError);  // name is a scalar
}

TEST(EvalConfig, FloatWrittenIntegersAreAccepted) {
  std::string text = kSegConfig;
  text.replace(text.find("middle_blk_num: 1"), 17, "middle_blk_num: !!float 1e0");
  EXPECT_EQ(parse(text).network_g.middle_blk_num, 1);
  text.replace(text.find("middle_blk_num: !!float 1e0"), 27, "middle_blk_num: 1.5");
  EXPECT_NE(config_error(text).find("network_g.middle_blk_num"), std::string::npos);
}

TEST(EvalConfig, YamlSyntaxErrorNamesFileAndLine) {
  const samdeblur::test::TempDir tmp("config");
  const std::string p =
      samdeblur::test::write_text(tmp / "bad_config.yml", "name: x\ndatasets: [unclosed\n");
  const std::string message = samdeblur::test::error_of<ConfigError>([&] { load_eval_config(p); });
  EXPECT_NE(message.find(p + ":"), std::string::npos) << message;
}

// Every shipped config under configs/test parses (4 models x 4 datasets).
TEST(EvalConfig, ShippedConfigsParse) {
  int count = 0;
  for (const auto& e :
       fs::recursive_directory_iterator(samdeblur::test::source_path("configs/test"))) {
    if (e.path().extension() != ".yml") continue;
    SCOPED_TRACE(e.path().string());
    const EvalConfig c = load_eval_config(e.path().string());
    EXPECT_EQ(c.datasets.size(), 1u);
    ++count;
  }
  EXPECT_EQ(count, 16);
}

// ---- ext: datasets.<key>.mask_source (masks on the fly) ------------------------
namespace {

// kSegConfig with dataroot_mask replaced by `source` (indented under the dataset).
std::string with_mask_source(const std::string& source, bool keep_dataroot = false) {
  std::string text = kSegConfig;
  const std::string line = "    dataroot_mask: ./masks\n";
  text.replace(text.find(line), line.size(), (keep_dataroot ? line : "") + source);
  return text;
}

const char* kSamSource = R"(    mask_source:
      type: sam
      checkpoint: /models/sam_vit_h_4b8939.pth
)";

}  // namespace

TEST(EvalConfig, MaskSourceSamDefaultsAreTheOfficialOnes) {
  const EvalConfig c = parse(with_mask_source(kSamSource));
  const auto& d = c.datasets[0];
  EXPECT_TRUE(d.dataroot_mask.empty());
  EXPECT_FALSE(d.masks_from_folder());
  const auto& m = d.mask_source;
  EXPECT_EQ(m.type, "sam");
  EXPECT_EQ(m.checkpoint, "/models/sam_vit_h_4b8939.pth");
  EXPECT_EQ(m.model_type, "auto");
  EXPECT_TRUE(m.cache_dir.empty());
  EXPECT_FALSE(m.rgb);
  EXPECT_EQ(m.encoding, "official");
  const samdeblur::sam::MaskGeneratorOptions official;
  EXPECT_EQ(m.generator.points_per_side, official.points_per_side);
  EXPECT_EQ(m.generator.points_per_batch, official.points_per_batch);
  EXPECT_EQ(m.generator.pred_iou_thresh, official.pred_iou_thresh);
  EXPECT_EQ(m.generator.stability_score_thresh, official.stability_score_thresh);
  EXPECT_EQ(m.generator.box_nms_thresh, official.box_nms_thresh);
  EXPECT_EQ(m.generator.crop_n_layers, official.crop_n_layers);
  EXPECT_EQ(m.generator.crop_overlap_ratio, official.crop_overlap_ratio);
  EXPECT_EQ(m.generator.min_mask_region_area, official.min_mask_region_area);
}

TEST(EvalConfig, MaskSourceSamReadsEveryGeneratorKey) {
  const EvalConfig c = parse(with_mask_source(R"(    mask_source:
      type: sam
      checkpoint: sam.pth
      model_type: vit_b
      cache_dir: /tmp/cache
      rgb: true
      encoding: exclusive
      exclusive_order: smallest_first
      generator:
        points_per_side: 16
        points_per_batch: 32
        pred_iou_thresh: 0.8
        stability_score_thresh: 0.9
        stability_score_offset: 0.5
        box_nms_thresh: 0.6
        crop_n_layers: 1
        crop_nms_thresh: 0.65
        crop_overlap_ratio: 0.25
        crop_n_points_downscale_factor: 2
        min_mask_region_area: 100
)"));
  const auto& m = c.datasets[0].mask_source;
  EXPECT_EQ(m.model_type, "vit_b");
  EXPECT_EQ(m.cache_dir, "/tmp/cache");
  EXPECT_TRUE(m.rgb);
  EXPECT_EQ(m.encoding, "exclusive");
  EXPECT_EQ(m.exclusive_order, "smallest_first");
  EXPECT_EQ(*m.generator.points_per_side, 16);
  EXPECT_EQ(m.generator.points_per_batch, 32);
  EXPECT_DOUBLE_EQ(m.generator.pred_iou_thresh, 0.8);
  EXPECT_DOUBLE_EQ(m.generator.stability_score_thresh, 0.9);
  EXPECT_DOUBLE_EQ(m.generator.stability_score_offset, 0.5);
  EXPECT_DOUBLE_EQ(m.generator.box_nms_thresh, 0.6);
  EXPECT_EQ(m.generator.crop_n_layers, 1);
  EXPECT_DOUBLE_EQ(m.generator.crop_nms_thresh, 0.65);
  EXPECT_DOUBLE_EQ(m.generator.crop_overlap_ratio, 0.25);
  EXPECT_EQ(m.generator.crop_n_points_downscale_factor, 2);
  EXPECT_EQ(m.generator.min_mask_region_area, 100);
  // Explicit point grids replace points_per_side.
  const EvalConfig g = parse(with_mask_source(R"(    mask_source:
      type: sam
      checkpoint: sam.pth
      generator:
        point_grids: [[[0.25, 0.25], [0.75, 0.5]]]
)"));
  const auto& gen = g.datasets[0].mask_source.generator;
  EXPECT_FALSE(gen.points_per_side.has_value());
  ASSERT_EQ(gen.point_grids.size(), 1u);
  EXPECT_EQ(gen.point_grids[0].sizes(), torch::IntArrayRef({2, 2}));
  EXPECT_DOUBLE_EQ(gen.point_grids[0][1][0].item<double>(), 0.75);
}

TEST(EvalConfig, MaskSourceSuperpixelsAndCatDataset) {
  std::string text = with_mask_source(R"(    mask_source:
      type: superpixels
      region_size: 24
)");
  const EvalConfig c = parse(text);
  EXPECT_EQ(c.datasets[0].mask_source.type, "superpixels");
  EXPECT_EQ(c.datasets[0].mask_source.superpixels.region_size, 24);
  // Superpixels take no SAM keys.
  const std::string err = config_error(with_mask_source(R"(    mask_source:
      type: superpixels
      checkpoint: sam.pth
)"));
  EXPECT_NE(err.find("datasets.test.mask_source.checkpoint"), std::string::npos) << err;
}

TEST(EvalConfig, MaskSourceErrorsNameTheKey) {
  auto expect_error = [](const std::string& text, const std::vector<std::string>& needles) {
    const std::string err = config_error(text);
    ASSERT_FALSE(err.empty()) << "expected a ConfigError";
    for (const auto& n : needles) EXPECT_NE(err.find(n), std::string::npos) << n << " in: " << err;
  };
  // Both dataroot_mask and mask_source.
  expect_error(with_mask_source(kSamSource, /*keep_dataroot=*/true),
               {"datasets.test.dataroot_mask", "datasets.test.mask_source", "exactly one"});
  // Neither: names both options.
  expect_error(with_mask_source(""), {"datasets.test.dataroot_mask", "datasets.test.mask_source"});
  // Unknown keys, at both levels, with a hint.
  expect_error(with_mask_source(std::string(kSamSource) + "      cachedir: /tmp\n"),
               {"datasets.test.mask_source.cachedir'",
                "did you mean 'datasets.test.mask_source.cache_dir'"});
  expect_error(with_mask_source(std::string(kSamSource) +
                                "      generator:\n        pred_iou_threshold: 0.5\n"),
               {"datasets.test.mask_source.generator.pred_iou_threshold", "pred_iou_thresh'"});
  // Bad values.
  expect_error(with_mask_source("    mask_source:\n      type: slic\n"),
               {"datasets.test.mask_source.type", "sam, superpixels"});
  expect_error(with_mask_source("    mask_source: sam\n"),
               {"datasets.test.mask_source", "mapping"});
  expect_error(with_mask_source("    mask_source:\n      type: sam\n"),
               {"datasets.test.mask_source.checkpoint"});
  expect_error(with_mask_source(std::string(kSamSource) + "      model_type: vit_x\n"),
               {"datasets.test.mask_source.model_type", "vit_h"});
  expect_error(with_mask_source(std::string(kSamSource) + "      encoding: clean\n"),
               {"datasets.test.mask_source.encoding"});
  expect_error(
      with_mask_source(std::string(kSamSource) + "      generator:\n        points_per_batch: 0\n"),
      {"datasets.test.mask_source.generator.points_per_batch"});
  expect_error(
      with_mask_source(std::string(kSamSource) + "      generator:\n        points_per_side: 8\n"
                                                 "        point_grids: [[[0.5, 0.5]]]\n"),
      {"datasets.test.mask_source.generator.point_grids"});
  expect_error(with_mask_source(std::string(kSamSource) +
                                "      generator:\n        point_grids: [[[0.5, 2.0]]]\n"),
               {"datasets.test.mask_source.generator.point_grids[0]"});
  // Exclusive grouping exists for grouped masks only (not the CAT label map).
  std::string cat = with_mask_source(std::string(kSamSource) + "      encoding: exclusive\n");
  cat.replace(cat.find("type: PairedImageGroupMaskDataset"), 33, "type: PairedImageMaskDataset");
  expect_error(cat, {"datasets.test.mask_source.encoding"});
}

// Every validation error of the section parsers names the file and the dotted key.
TEST(EvalConfig, ValidationErrorsNameFileAndDottedKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"datasets.test.mask_encoding=raw", "datasets.test.mask_encoding"},
      {"datasets.test.io_backend.type=lmdb", "datasets.test.io_backend.type"},
      {"datasets.test.type=LmdbDataset", "datasets.test.type"},
      {"val.metrics.psnr.type=calculate_lpips", "val.metrics.psnr.type"},
      {"val.metrics.psnr.crop_border=-1", "val.metrics.psnr.crop_border"},
      {"val.metrics.ssim.input_order=HCW", "val.metrics.ssim.input_order"},
      {"val.max_minibatch=0", "val.max_minibatch"},
      {"val.grids=true", "val.grids"},
      {"model_type=VideoModel", "model_type"},
      {"grouped_masks=false", "grouped_masks"},
  };
  for (const auto& [assignment, key] : cases) {
    SCOPED_TRACE(assignment);
    YAML::Node root = YAML::Load(kSegConfig);
    apply_override(root, assignment);
    try {
      parse_eval_config(root, "test.yml");
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      const std::string err = e.what();
      EXPECT_EQ(err.rfind("test.yml: ", 0), 0u) << err;
      EXPECT_NE(err.find(key), std::string::npos) << err;
    }
  }
}
