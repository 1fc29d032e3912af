// Sweep files: parsing, relative paths, strict errors naming file / key / value,
// the cells' evaluation configs, and the committed paper sweep.
#include "samdeblur/sweep/sweep_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/sweep/cell.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

const std::string kTiny = test::data_path("sweep/tiny.yml");

std::string parse_error(const std::string& yaml) {
  return test::error_of<ConfigError>(
      [&] { sweep::parse_sweep_config(config::load_yaml_text(yaml, "/s/bad.yml"), "/s/bad.yml"); });
}

const std::string kVariants =
    "variants:\n  - {name: A, config: a.yml, checkpoint: a.pth}\n"
    "  - {name: B, config: /abs/b.yml, checkpoint: b.pth}\n";
const std::string kDatasets = "datasets:\n  - {name: D, dataroot_lq: lq, dataroot_gt: gt}\n";

}  // namespace

TEST(SweepConfig, ParsesTheTinySweepAndResolvesPathsAgainstItsFolder) {
  const auto s = sweep::load_sweep_config(kTiny);
  const fs::path base = fs::absolute(test::data_path("sweep")).lexically_normal();
  EXPECT_EQ(s.name, "tiny");
  ASSERT_EQ(s.variants.size(), 3u);
  EXPECT_EQ(s.variants[0].name, "w/o SAM");
  EXPECT_EQ(s.variants[0].config, (base / "NAFNet.yml").string());
  EXPECT_EQ(s.variants[2].checkpoint,
            (base / "../eval/checkpoints/SegNAFNet.pth").lexically_normal().string());
  ASSERT_EQ(s.datasets.size(), 2u);
  EXPECT_EQ(s.datasets[0].dataroot_label_masks,
            (base / "../eval/input_mask").lexically_normal().string());
  EXPECT_TRUE(s.datasets[0].mask_source.IsNull() || !s.datasets[0].mask_source.IsDefined());
  EXPECT_EQ(s.datasets[1].mask_source["type"].as<std::string>(), "superpixels");
  ASSERT_TRUE(s.reference.has_value());
  const auto* r = s.reference->find("MAP", "superpixels");
  ASSERT_NE(r, nullptr);
  EXPECT_DOUBLE_EQ(*r->psnr, 21.0);
  EXPECT_DOUBLE_EQ(*r->mcr, 0.333);  // mcr_percent / 100
  EXPECT_EQ(s.reference->find("CAT", "files"), nullptr);
  EXPECT_EQ(sweep::slug("w/o SAM"), "w_o_SAM");
}

TEST(SweepConfig, AbsolutePathsStayAndRelativeOnesFollowTheFile) {
  const auto s = sweep::parse_sweep_config(
      config::load_yaml_text("name: x\n" + kVariants + kDatasets, "/s/sweep.yml"), "/s/sweep.yml");
  EXPECT_EQ(s.variants[0].config, "/s/a.yml");
  EXPECT_EQ(s.variants[1].config, "/abs/b.yml");
  EXPECT_EQ(s.datasets[0].dataroot_lq, "/s/lq");
  EXPECT_EQ(s.datasets[0].dataroot_label_masks, "");
  EXPECT_FALSE(s.reference.has_value());
}

TEST(SweepConfig, ErrorsNameTheFileTheKeyAndTheValue) {
  struct Case {
    std::string yaml, expected;
  };
  const std::vector<Case> cases = {
      {kVariants + kDatasets, "required key 'name' is missing"},
      {"name: x\n" + kDatasets, "required key 'variants' is missing"},
      {"name: x\nvariants: 3\n" + kDatasets, "'variants' must be a non-empty list"},
      {"name: x\nvariants: []\n" + kDatasets, "'variants' must be a non-empty list"},
      {"name: x\nvariants: [3]\n" + kDatasets, "variants[0] must be a mapping"},
      {"name: x\n" + kVariants + "datasets:\n  - {name: D, dataroot_lq: lq, dataroot_gtt: gt}\n",
       "datasets[0].dataroot_gtt"},
      {"name: x\nvariants:\n  - {name: A, config: a.yml}\n" + kDatasets,
       "required key 'variants[0].checkpoint' is missing"},
      {"name: x\nvariants:\n  - {name: A, config: a.yml, checkpoint: a}\n"
       "  - {name: A, config: b.yml, checkpoint: b}\n" +
           kDatasets,
       "variants[1].name = 'A' is used twice"},
      {"name: x\nvariants:\n  - {name: a/b, config: a.yml, checkpoint: a}\n"
       "  - {name: a_b, config: b.yml, checkpoint: b}\n" +
           kDatasets,
       "gives the folder name 'a_b'"},
      {"name: x\n" + kVariants + kDatasets + "referense: {}\n", "referense"},
      {"name: x\n" + kVariants + kDatasets + "reference:\n  values:\n    C: {D: {psnr: 1}}\n",
       "reference.values.C names no variant"},
      {"name: x\n" + kVariants + kDatasets + "reference:\n  values:\n    A: {E: {psnr: 1}}\n",
       "reference.values.A.E names no dataset"},
      {"name: x\n" + kVariants + kDatasets + "reference:\n  values:\n    A: {D: {psnr: high}}\n",
       "reference.values.A.D.psnr must be a number, got 'high'"},
      {"name: x\n" + kVariants + kDatasets + "reference:\n  values:\n    A: {D: {mcr: 1}}\n",
       "reference.values.A.D.mcr"},
      {"name: x\n" + kVariants + "datasets:\n  - {name: D, mask_source: sam}\n",
       "'datasets[0].mask_source' must be a mapping"},
  };
  for (const auto& c : cases) {
    const std::string msg = parse_error("# sweep\n" + c.yaml);
    EXPECT_NE(msg.find("/s/bad.yml"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos)
        << "expected '" << c.expected << "' in: " << msg;
  }
}

TEST(SweepConfig, CellConfigsApplyTheDatasetToEachVariant) {
  const test::TempDir tmp("sweep_cells");
  const auto s = sweep::load_sweep_config(kTiny);
  const auto cells = sweep::plan_cells(s, tmp.str());
  ASSERT_EQ(cells.size(), 6u);
  // Dataset-major: every variant of "files", then of "superpixels".
  EXPECT_EQ(cells[0].dataset_name, "files");
  EXPECT_EQ(cells[3].dataset_name, "superpixels");
  EXPECT_EQ(cells[4].dir, (tmp.path() / "CAT" / "superpixels").string());
  const auto& nafnet = cells[0].config;
  ASSERT_EQ(nafnet.datasets.size(), 1u);
  EXPECT_EQ(nafnet.datasets[0].name, "files");
  EXPECT_EQ(nafnet.datasets[0].dataroot_lq, s.datasets[0].dataroot_lq);
  EXPECT_EQ(nafnet.path.pretrain_network_g, s.variants[0].checkpoint);
  EXPECT_TRUE(nafnet.val.save_img);
  EXPECT_EQ(cells[1].config.datasets[0].dataroot_mask, s.datasets[0].dataroot_label_masks);
  EXPECT_EQ(cells[2].config.datasets[0].dataroot_mask, s.datasets[0].dataroot_grouped_masks);
  // On the fly: one cache folder per dataset, shared by the variants.
  const auto& cat = cells[4].config.datasets[0];
  const auto& map = cells[5].config.datasets[0];
  EXPECT_TRUE(cat.dataroot_mask.empty());
  EXPECT_EQ(cat.mask_source.type, "superpixels");
  EXPECT_EQ(cat.mask_source.superpixels.region_size, 8);
  EXPECT_EQ(cat.mask_source.cache_dir, (tmp.path() / "mask_cache" / "superpixels").string());
  EXPECT_EQ(map.mask_source.cache_dir, cat.mask_source.cache_dir);
}

TEST(SweepConfig, AVariantConfigMustEvaluateExactlyOneDataset) {
  const test::TempDir tmp("sweep_two_sets");
  std::string cfg = test::read_text(test::data_path("sweep/NAFNet.yml"));
  const auto pos = cfg.find("datasets:\n");
  cfg.insert(pos + 10,
             "  val:\n    name: v\n    type: PairedImageDataset\n"
             "    dataroot_gt: g\n    dataroot_lq: l\n");
  test::write_text(tmp / "v.yml", cfg);
  test::write_text(tmp / "s.yml",
                   "name: s\nvariants: [{name: A, config: v.yml, checkpoint: c}]\n" + kDatasets);
  const auto s = sweep::load_sweep_config((tmp / "s.yml").string());
  const std::string msg =
      test::error_of<ConfigError>([&] { sweep::cell_config(s, 0, 0, tmp.str()); });
  EXPECT_NE(msg.find("variant 'A' x dataset 'D'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exactly one dataset, it has 2 (val, test)"), std::string::npos) << msg;
}

TEST(SweepConfig, ThePaperSweepHasTheFourVariantsDatasetsAndPublishedTable) {
  const test::TempDir tmp("sweep_paper");
  const auto s = sweep::load_sweep_config(test::source_path("configs/sweeps/paper.yml"));
  ASSERT_EQ(s.variants.size(), 4u);
  ASSERT_EQ(s.datasets.size(), 4u);
  const std::vector<std::string> rows = {"w/o SAM", "CAT", "MAP", "Ours"};
  const std::vector<std::string> cols = {"GoPro", "RealBlur-J", "REDS", "ReLoBlur"};
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(s.variants[k].name, rows[k]);
    EXPECT_EQ(s.datasets[k].name, cols[k]);
  }
  ASSERT_TRUE(s.reference.has_value());
  for (const auto& r : rows)
    for (const auto& c : cols) {
      const auto* v = s.reference->find(r, c);
      ASSERT_NE(v, nullptr) << r << " " << c;
      EXPECT_TRUE(v->psnr && v->ssim) << r << " " << c;
      EXPECT_EQ(v->mcr.has_value(), c != "GoPro") << r << " " << c;
    }
  EXPECT_DOUBLE_EQ(*s.reference->find("Ours", "ReLoBlur")->psnr, 32.29);
  EXPECT_DOUBLE_EQ(*s.reference->find("CAT", "REDS")->mcr, 0.0257);
  // Every cell's config parses, with the official checkpoint and the dataset's masks.
  const auto cells = sweep::plan_cells(s, tmp.str());
  ASSERT_EQ(cells.size(), 16u);
  for (const auto& c : cells) {
    const auto& ds = c.config.datasets.at(0);
    EXPECT_EQ(ds.name, c.dataset_name);
    if (ds.type == "PairedImageMaskDataset" && c.dataset_name == "GoPro") {
      EXPECT_NE(ds.dataroot_mask.find("input_predict_mask"), std::string::npos);
    }
    if (ds.type == "PairedImageGroupMaskDataset") {
      EXPECT_NE(ds.dataroot_mask.find("grouped_masks"), std::string::npos);
    }
  }
  EXPECT_NE(cells[0].config.path.pretrain_network_g.find("NAFNet-GoPro.pth"), std::string::npos);
  EXPECT_NE(cells[3].config.path.pretrain_network_g.find("SegNAFNet-GoPro.pth"), std::string::npos);
}
