#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "samdeblur/config/options.h"
#include "samdeblur/core/error.h"

using samdeblur::ConfigError;
using namespace samdeblur::config;
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

EvalConfig parse(const std::string& text) { return parse_eval_config(YAML::Load(text), "test.yml"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
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
  const std::string err = error_of(text);
  EXPECT_NE(err.find("network_g.seg_chanel"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'network_g.seg_channel'"), std::string::npos) << err;
  EXPECT_NE(err.find("test.yml"), std::string::npos) << err;
}

TEST(EvalConfig, WrongTypeNamesKey) {
  std::string text = kSegConfig;
  text.replace(text.find("width: 32"), 9, "width: wide");
  const std::string err = error_of(text);
  EXPECT_NE(err.find("network_g.width"), std::string::npos) << err;
  EXPECT_NE(err.find("wide"), std::string::npos) << err;
}

TEST(EvalConfig, UnknownNetworkTypeListsValidOnes) {
  std::string text = kSegConfig;
  text.replace(text.find("type: SegNAFNetLocal"), 20, "type: SegNet");
  const std::string err = error_of(text);
  EXPECT_NE(err.find("SegNet"), std::string::npos) << err;
  EXPECT_NE(err.find("NAFNetLocal"), std::string::npos) << err;
}

TEST(EvalConfig, MissingDatarootIsAnError) {
  std::string text = kSegConfig;
  text.erase(text.find("    dataroot_mask: ./masks\n"), 26);
  const std::string err = error_of(text);
  EXPECT_NE(err.find("datasets.test.dataroot_mask"), std::string::npos) << err;
}

TEST(EvalConfig, NetworkAndDatasetMustAgree) {
  std::string text = kSegConfig;
  text.replace(text.find("type: PairedImageGroupMaskDataset"), 33, "type: PairedImageDataset");
  const std::string err = error_of(text);
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
  EXPECT_NE(error_of(text).find("network_g.middle_blk_num"), std::string::npos);
}

TEST(EvalConfig, YamlSyntaxErrorNamesFileAndLine) {
  const fs::path p = fs::temp_directory_path() / "sdb_bad_config.yml";
  {
    std::ofstream(p) << "name: x\ndatasets: [unclosed\n";
  }
  try {
    load_eval_config(p.string());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string() + ":"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

// Every shipped config under configs/test parses (4 models x 4 datasets).
TEST(EvalConfig, ShippedConfigsParse) {
  int count = 0;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(SAMDEBLUR_SOURCE_DIR) / "configs" / "test")) {
    if (e.path().extension() != ".yml") continue;
    SCOPED_TRACE(e.path().string());
    const EvalConfig c = load_eval_config(e.path().string());
    EXPECT_EQ(c.datasets.size(), 1u);
    ++count;
  }
  EXPECT_EQ(count, 16);
}
