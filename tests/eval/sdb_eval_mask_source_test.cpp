// End-to-end: sdb-eval with masks computed on the fly (datasets.<key>.mask_source,
// SLIC superpixels so no SAM weights are needed) gives exactly the results of
// the offline path (the same masks written as files, read through dataroot_mask),
// and the second run is served from the mask cache.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "samdeblur/io/image.h"
#include "samdeblur/masks/encodings.h"
#include "samdeblur/masks/superpixels.h"
#include "samdeblur/sam/mask_generator.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

using test::read_text;

const std::string kData = test::data_path("eval");

// The tiny SegNAFNet (MAP) or MaskNAFNet (CAT) of tests/data/eval with a mask block.
std::string eval_config(bool cat, const std::string& masks) {
  std::ostringstream y;
  y << "name: e2e-mask-source\nmodel_type: ImageRestorationModel\nmanual_seed: 10\n"
    << (cat ? "" : "grouped_masks: true\n") << "datasets:\n  test:\n    name: tiny\n"
    << "    type: " << (cat ? "PairedImageMaskDataset" : "PairedImageGroupMaskDataset") << "\n"
    << "    dataroot_gt: " << kData << "/target\n    dataroot_lq: " << kData << "/input\n"
    << masks << "network_g:\n  type: " << (cat ? "NAFNetLocal" : "SegNAFNetLocal")
    << "\n  width: 8\n  enc_blk_nums: [1, 1]\n  middle_blk_num: 1\n  dec_blk_nums: [1, 1]\n"
    << (cat ? "  mask: true\n" : "  seg_channel: 2\n") << "  train_size: [1, 3, 16, 16]\n"
    << "path:\n  pretrain_network_g: " << kData << "/checkpoints/"
    << (cat ? "MaskNAFNet" : "SegNAFNet") << ".pth\n"
    << "val:\n  metrics:\n    psnr:\n      type: calculate_psnr\n    ssim:\n"
    << "      type: calculate_ssim\n";
  return y.str();
}

struct EvalRun {
  int code;
  std::string log;
  nlohmann::json summary;
  std::vector<std::string> rows;  // metrics.csv without the seconds column
};

EvalRun run(const fs::path& work, const std::string& tag, const std::string& cfg,
            bool quiet = true) {
  const fs::path out = work / tag;
  const std::string cfg_path = test::write_text(work / (tag + ".yml"), cfg);
  std::vector<std::string> args = {"--config", cfg_path, "--output", out.string()};
  if (quiet) args.insert(args.begin(), "-q");
  const auto app = test::run_app("sdb-eval", args);
  EvalRun r{app.exit_code, app.output(), {}, {}};
  if (r.code != 0) return r;
  r.summary = nlohmann::json::parse(read_text(out / "summary.json"));
  std::istringstream csv(read_text(out / "metrics.csv"));
  for (std::string line; std::getline(csv, line);)
    r.rows.push_back(line.substr(0, line.rfind(',')));
  return r;
}

}  // namespace

TEST(SdbEvalMaskSource, SuperpixelsOnTheFlyEqualOfflineFilesAndHitTheCache) {
  const test::TempDir tmp("eval_mask_source");
  const fs::path work = tmp.path();
  masks::SuperpixelOptions sp;
  sp.region_size = 8;
  // Offline: what `sdb-masks --source superpixels --superpixel-size 8` writes.
  for (const auto& e : fs::directory_iterator(kData + "/input")) {
    const cv::Mat bgr = io::read_image_bgr(e.path().string());
    const auto result = masks::superpixel_masks(bgr, sp, sam::OutputMode::uncompressed_rle);
    const std::string stem = e.path().stem().string();
    masks::write_mask_file((work / "grouped" / (stem + ".npz")).string(),
                           masks::MaskFileFormat::grouped_npz, result, bgr.rows, bgr.cols);
    masks::write_mask_file((work / "label" / (stem + ".png")).string(),
                           masks::MaskFileFormat::label_png, result, bgr.rows, bgr.cols);
  }
  const std::string source =
      "    mask_source:\n      type: superpixels\n      region_size: 8\n      cache_dir: " +
      (work / "cache").string() + "\n";

  // MAP (grouped masks).
  const EvalRun offline =
      run(work, "offline",
          eval_config(false, "    dataroot_mask: " + (work / "grouped").string() + "\n"));
  ASSERT_EQ(offline.code, 0) << offline.log;
  // Not quiet: the cache counters are an info line (-q shows warnings and errors only).
  const EvalRun first = run(work, "first", eval_config(false, source), /*quiet=*/false);
  ASSERT_EQ(first.code, 0) << first.log;
  ASSERT_EQ(first.rows.size(), 4u);
  EXPECT_EQ(first.rows, offline.rows);
  const auto& cache1 = first.summary["datasets"][0]["mask_cache"];
  EXPECT_EQ(cache1["misses"].get<int>(), 3);
  EXPECT_EQ(cache1["hits"].get<int>(), 0);
  EXPECT_NE(first.log.find("0 hits, 3 misses"), std::string::npos) << first.log;
  const EvalRun second = run(work, "second", eval_config(false, source));
  ASSERT_EQ(second.code, 0) << second.log;
  EXPECT_EQ(second.rows, offline.rows);
  const auto& cache2 = second.summary["datasets"][0]["mask_cache"];
  EXPECT_EQ(cache2["hits"].get<int>(), 3);
  EXPECT_EQ(cache2["misses"].get<int>(), 0);

  // CAT (label map as 4th channel), default cache folder <output>/mask_cache.
  const EvalRun cat_offline =
      run(work, "cat_offline",
          eval_config(true, "    dataroot_mask: " + (work / "label").string() + "\n"));
  ASSERT_EQ(cat_offline.code, 0) << cat_offline.log;
  const EvalRun cat =
      run(work, "cat",
          eval_config(true, "    mask_source:\n      type: superpixels\n      region_size: 8\n"));
  ASSERT_EQ(cat.code, 0) << cat.log;
  EXPECT_EQ(cat.rows, cat_offline.rows);
  EXPECT_EQ(cat.summary["datasets"][0]["mask_cache"]["dir"].get<std::string>(),
            (work / "cat" / "mask_cache").string());
  EXPECT_TRUE(fs::is_directory(work / "cat" / "mask_cache"));

  // Both mask options: a non-zero exit naming the keys.
  const EvalRun both =
      run(work, "both",
          eval_config(false, "    dataroot_mask: " + (work / "grouped").string() + "\n" + source));
  EXPECT_NE(both.code, 0);
  EXPECT_NE(both.log.find("datasets.test.mask_source"), std::string::npos) << both.log;
  // A missing SAM checkpoint is reported before anything runs.
  const EvalRun no_ckpt =
      run(work, "no_ckpt",
          eval_config(false, "    mask_source:\n      type: sam\n      checkpoint: " +
                                 (work / "missing.pth").string() + "\n"));
  EXPECT_NE(no_ckpt.code, 0);
  EXPECT_NE(no_ckpt.log.find("missing.pth"), std::string::npos) << no_ckpt.log;
}
