// sdb-eval run flags: -q prints exactly the result line; --allow-nonfinite lets a
// checkpoint with NaN weights load (refused by default, naming the tensor);
// masks from the "files" mask source equal the offline dataroot_mask path.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "samdeblur/io/checkpoint.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace io = samdeblur::io;
using samdeblur::test::TempDir;

namespace {

const std::string kData = std::string(SAMDEBLUR_TEST_DATA) + "/eval";

// The tiny NAFNet (or SegNAFNet with `masks`) of tests/data/eval on its three images.
std::string write_config(const TempDir& dir, const std::string& checkpoint,
                         const std::string& masks = "") {
  const bool seg = !masks.empty();
  std::ofstream y(dir / "cfg.yml");
  y << "name: flags\nmodel_type: ImageRestorationModel\nmanual_seed: 10\n"
    << (seg ? "grouped_masks: true\n" : "") << "datasets:\n  test:\n    name: tiny\n"
    << "    type: " << (seg ? "PairedImageGroupMaskDataset" : "PairedImageDataset") << "\n"
    << "    dataroot_gt: " << kData << "/target\n    dataroot_lq: " << kData << "/input\n"
    << masks << "network_g:\n  type: " << (seg ? "SegNAFNetLocal" : "NAFNetLocal")
    << "\n  width: 8\n  enc_blk_nums: [1, 1]\n  middle_blk_num: 1\n  dec_blk_nums: [1, 1]\n"
    << (seg ? "  seg_channel: 2\n" : "") << "  train_size: [1, 3, 16, 16]\n"
    << "path:\n  pretrain_network_g: " << checkpoint << "\n"
    << "val:\n  metrics:\n    psnr:\n      type: calculate_psnr\n";
  return (dir / "cfg.yml").string();
}

samdeblur::test::AppResult eval(const TempDir& dir, const std::string& cfg, const std::string& out,
                                std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--threads", "1", "-c", cfg, "-o", (dir / out).string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return samdeblur::test::run_app("sdb-eval", args);
}

}  // namespace

TEST(SdbEvalFlags, QuietPrintsExactlyTheResultLine) {
  if (!samdeblur::test::app_built("sdb-eval")) GTEST_SKIP() << "sdb-eval not built";
  TempDir dir("eval_flags");
  const auto cfg = write_config(dir, kData + "/checkpoints/NAFNet.pth");
  const auto r = eval(dir, cfg, "out", {"-q"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(std::regex_match(
      r.out,
      std::regex(
          "tiny \\| 3 images \\| psnr [-0-9.]+ \\| ssim [-0-9.]+ \\| MCR [0-9.]+% \\| input PSNR "
          "[-0-9.]+\n")))
      << r.out;
  // Without -q the log (command, versions, result folder) is there.
  const auto loud = eval(dir, cfg, "out_loud");
  ASSERT_EQ(loud.exit_code, 0) << loud.output();
  EXPECT_NE(loud.err.find("results written to"), std::string::npos) << loud.err;
}

TEST(SdbEvalFlags, NonFiniteCheckpointIsRefusedUnlessAllowed) {
  if (!samdeblur::test::app_built("sdb-eval")) GTEST_SKIP() << "sdb-eval not built";
  TempDir dir("eval_flags");
  auto sd = io::load_state_dict_file(kData + "/checkpoints/NAFNet.pth");
  ASSERT_FALSE(sd.empty());
  const std::string name = sd[0].first;
  sd[0].second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  const std::string ckpt = (dir / "nan.pth").string();
  io::save_state_dict_file(ckpt, sd);
  const auto cfg = write_config(dir, ckpt);

  const auto refused = eval(dir, cfg, "out", {"-q"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output();
  EXPECT_NE(refused.err.find(name), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("1 of"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--allow-nonfinite"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir / "out"));

  const auto allowed = eval(dir, cfg, "out", {"-q", "--allow-nonfinite"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output();
  EXPECT_NE(allowed.err.find("warn"), std::string::npos) << allowed.err;
  EXPECT_NE(allowed.err.find(name), std::string::npos) << allowed.err;
  EXPECT_TRUE(fs::exists(dir / "out" / "summary.json"));
}

TEST(SdbEvalFlags, FilesMaskSourceEqualsDatarootMask) {
  if (!samdeblur::test::app_built("sdb-eval") || !samdeblur::test::app_built("sdb-masks"))
    GTEST_SKIP() << "apps not built";
  TempDir dir("eval_flags");
  const auto masks = samdeblur::test::run_app(
      "sdb-masks", {"--source", "superpixels", "--superpixel-size", "8", "-q", "--format",
                    "grouped-npz", "-i", kData + "/input", "-o", (dir / "grouped").string()});
  ASSERT_EQ(masks.exit_code, 0) << masks.output();
  const std::string ckpt = kData + "/checkpoints/SegNAFNet.pth";
  const auto offline =
      eval(dir, write_config(dir, ckpt, "    dataroot_mask: " + (dir / "grouped").string() + "\n"),
           "offline", {"-q"});
  ASSERT_EQ(offline.exit_code, 0) << offline.output();
  const auto files = eval(dir,
                          write_config(dir, ckpt,
                                       "    mask_source:\n      type: files\n      folder: " +
                                           (dir / "grouped").string() + "\n"),
                          "files", {"-q"});
  ASSERT_EQ(files.exit_code, 0) << files.output();
  EXPECT_EQ(files.out, offline.out);
}
