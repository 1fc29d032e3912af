// End to end: the real sdb-deblur on the committed tiny benchmark
// (tests/data/eval) and tests/data/deblur: equality with sdb-eval's output
// bytes, EXIF orientation, resume, refusals, and a corrupt input among good ones.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "samdeblur/io/image.h"
#include "support/test_support.h"
#include "support/tiny_networks.h"

namespace fs = std::filesystem;

namespace {

using samdeblur::test::AppResult;
using samdeblur::test::read_text;

const std::string kData = samdeblur::test::data_path("eval");

AppResult run_deblur(const std::vector<std::string>& args) {
  return samdeblur::test::run_app("sdb-deblur", args);
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}

using Variant = samdeblur::test::FixtureNetwork;

std::string eval_config(const Variant& v, const fs::path& yml_dir) {
  std::ostringstream y;
  y << "name: parity\nmodel_type: ImageRestorationModel\nmanual_seed: 10\n";
  if (v.dataset_type == "PairedImageGroupMaskDataset") y << "grouped_masks: true\n";
  y << "datasets:\n  test:\n    name: tiny\n    type: " << v.dataset_type << "\n"
    << "    dataroot_gt: " << kData << "/target\n    dataroot_lq: " << kData << "/input\n";
  if (!v.mask_dir.empty()) y << "    dataroot_mask: " << kData << "/" << v.mask_dir << "\n";
  y << "network_g:\n  type: " << v.type
    << "\n  width: 8\n  enc_blk_nums: [1, 1]\n  middle_blk_num: 1\n  dec_blk_nums: [1, 1]\n"
    << v.extra;
  y << "path:\n  pretrain_network_g: " << kData << "/checkpoints/" << v.name << ".pth\n";
  y << "val:\n  save_img: true\n  grids: false\n  metrics:\n    psnr:\n      type: "
       "calculate_psnr\n      crop_border: 0\n";
  return samdeblur::test::write_text(yml_dir / (v.name + "-eval.yml"), y.str());
}

class SdbDeblurEvalParity : public ::testing::TestWithParam<Variant> {};

}  // namespace

// The same image, masks and checkpoint give the same bytes as sdb-eval.
TEST_P(SdbDeblurEvalParity, SameBytesAsSdbEval) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  const Variant v = GetParam();
  const samdeblur::test::TempDir tmp("deblur_parity");
  const std::string cfg = eval_config(v, tmp.path());
  const AppResult e = samdeblur::test::run_app(
      "sdb-eval", {"-q", "--config", cfg, "--output", (tmp / "eval").string()});
  ASSERT_EQ(e.exit_code, 0) << e.output();
  std::vector<std::string> args = {"-q",           kData + "/input",
                                   "-o",           (tmp / "deblur").string(),
                                   "--checkpoint", kData + "/checkpoints/" + v.name + ".pth",
                                   "--config",     cfg,
                                   "--mask-cache", ""};
  if (!v.mask_dir.empty()) args.insert(args.end(), {"--masks-dir", kData + "/" + v.mask_dir});
  const AppResult d = run_deblur(args);
  ASSERT_EQ(d.exit_code, 0) << d.output();
  for (const std::string name : {"img_a", "img_b", "img_c"}) {
    const std::string a = read_text(tmp / "eval" / "images" / (name + ".png"));
    const std::string b = read_text(tmp / "deblur" / (name + ".png"));
    ASSERT_FALSE(a.empty()) << name;
    EXPECT_TRUE(a == b) << name << ": sdb-deblur output differs from sdb-eval's";
  }
  // The recognised network (no --config; TLC with the default train size) differs from the
  // fixture's train_size 16 for the Local ones, but must run.
  const AppResult r = run_deblur({"-q", kData + "/input/img_a.png", "-o", (tmp / "rec").string(),
                                  "--checkpoint", kData + "/checkpoints/" + v.name + ".pth",
                                  "--masks", "superpixels", "--mask-cache", ""});
  EXPECT_EQ(r.exit_code, 0) << r.output();
  EXPECT_TRUE(fs::exists(tmp / "rec" / "img_a.png"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SdbDeblurEvalParity,
                         ::testing::ValuesIn(samdeblur::test::fixture_networks()),
                         samdeblur::test::fixture_network_test_name);

TEST(SdbDeblur, AppliesExifOrientationBeforeProcessing) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  // Stored 24 x 16 (W x H) with Orientation 6: displayed 16 x 24, red block top-right.
  const std::string jpg = samdeblur::test::fixture_path(
      "deblur/exif_orientation6.jpg", "run tests/data/deblur/make_exif_fixture.py");
  const cv::Mat shown = samdeblur::io::read_image_bgr(jpg);
  ASSERT_EQ(shown.rows, 24);
  ASSERT_EQ(shown.cols, 16);
  EXPECT_GT(shown.at<cv::Vec3b>(2, 13)[2], 200);  // red (BGR)
  EXPECT_GT(shown.at<cv::Vec3b>(2, 2)[0], 200);   // blue
  const samdeblur::test::TempDir tmp("deblur_exif");
  const AppResult r = run_deblur(
      {"-q", jpg, "-o", tmp.str(), "--checkpoint", kData + "/checkpoints/NAFNet.pth", "--compare"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  const cv::Mat out = samdeblur::io::read_image_bgr((tmp / "exif_orientation6.png").string());
  EXPECT_EQ(out.rows, 24);
  EXPECT_EQ(out.cols, 16);
  const cv::Mat cmp =
      samdeblur::io::read_image_bgr((tmp / "exif_orientation6_compare.png").string());
  EXPECT_EQ(cmp.rows, 24);
  EXPECT_EQ(cmp.cols, 32);  // input | output (no masks)
}

TEST(SdbDeblur, ResumesAndWritesJsonLinesWithTimes) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  const samdeblur::test::TempDir tmp("deblur_resume");
  const std::vector<std::string> args = {kData + "/input/*.png",
                                         "-o",
                                         (tmp / "out").string(),
                                         "--checkpoint",
                                         kData + "/checkpoints/SegNAFNet.pth",
                                         "--masks",
                                         "superpixels",
                                         "--superpixel-size",
                                         "12",
                                         "--mask-cache",
                                         (tmp / "cache").string(),
                                         "--save-masks",
                                         "--compare",
                                         "--format",
                                         "jpg",
                                         "--quality",
                                         "90",
                                         "-q"};
  const AppResult first = run_deblur(args);
  ASSERT_EQ(first.exit_code, 0) << first.output();
  const auto lines = json_lines(first.out);
  ASSERT_EQ(lines.size(), 3u) << first.out;
  for (const auto& l : lines) {
    EXPECT_EQ(l["status"], "done") << l;
    for (const char* k : {"masks", "network", "io", "total"})
      EXPECT_GE(l["seconds"][k].get<double>(), 0.0) << l;
    EXPECT_GT(l["seconds"]["masks"].get<double>(), 0.0) << l;
  }
  for (const std::string name : {"img_a", "img_b", "img_c"}) {
    EXPECT_TRUE(fs::exists(tmp / "out" / (name + ".jpg"))) << name;
    const cv::Mat mask =
        samdeblur::io::read_image_bgr((tmp / "out" / (name + "_mask.png")).string(), true);
    const cv::Mat cmp =
        samdeblur::io::read_image_bgr((tmp / "out" / (name + "_compare.jpg")).string());
    EXPECT_EQ(cmp.cols, 3 * mask.cols) << name;  // input | output | overlay
  }
  const auto mtime = fs::last_write_time(tmp / "out" / "img_a.jpg");
  const AppResult second = run_deblur(args);
  ASSERT_EQ(second.exit_code, 0) << second.output();
  for (const auto& l : json_lines(second.out)) EXPECT_EQ(l["status"], "skipped") << l;
  EXPECT_EQ(fs::last_write_time(tmp / "out" / "img_a.jpg"), mtime);
  // A deleted output is redone, the others stay skipped.
  fs::remove(tmp / "out" / "img_b.jpg");
  const AppResult third = run_deblur(args);
  ASSERT_EQ(third.exit_code, 0) << third.output();
  const auto l3 = json_lines(third.out);
  ASSERT_EQ(l3.size(), 3u);
  EXPECT_EQ(l3[1]["status"], "done");
  EXPECT_EQ(l3[0]["status"], "skipped");
}

TEST(SdbDeblur, RefusesTheInputFolderAsOutputAndNeverOverwritesInputs) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  const samdeblur::test::TempDir tmp("deblur_refuse");
  fs::copy(kData + "/input", tmp / "in");
  const std::string before = read_text(tmp / "in" / "img_a.png");
  for (const auto& input : {(tmp / "in").string(), (tmp / "in" / "img_a.png").string()}) {
    const AppResult r = run_deblur({"-q", input, "-o", (tmp / "in" / ".").string(), "--checkpoint",
                                    kData + "/checkpoints/NAFNet.pth"});
    EXPECT_NE(r.exit_code, 0) << r.output();
    EXPECT_NE(r.err.find("is the folder of the input"), std::string::npos) << r.err;
  }
  EXPECT_EQ(read_text(tmp / "in" / "img_a.png"), before);
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp / "in"), fs::directory_iterator{}), 3);
  // Two inputs that would share an output name.
  fs::create_directories(tmp / "other");
  fs::copy_file(tmp / "in" / "img_a.png", tmp / "other" / "img_a.png");
  const AppResult clash =
      run_deblur({"-q", (tmp / "in").string(), (tmp / "other").string(), "-o",
                  (tmp / "out").string(), "--checkpoint", kData + "/checkpoints/NAFNet.pth"});
  EXPECT_NE(clash.exit_code, 0);
  EXPECT_NE(clash.err.find("would both be written to"), std::string::npos) << clash.err;
}

TEST(SdbDeblur, CorruptInputIsReportedByNameAndTheOthersComplete) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  const samdeblur::test::TempDir tmp("deblur_corrupt");
  fs::copy(kData + "/input", tmp / "in");
  const std::string good = read_text(tmp / "in" / "img_b.png");
  samdeblur::test::write_text(tmp / "in" / "img_b.png", good.substr(0, good.size() / 2));
  const AppResult r = run_deblur({tmp.str() + "/in", "-o", (tmp / "out").string(), "--checkpoint",
                                  kData + "/checkpoints/NAFNet.pth", "-q"});
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_NE(r.err.find((tmp / "in" / "img_b.png").string()), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "out" / "img_a.png"));
  EXPECT_TRUE(fs::exists(tmp / "out" / "img_c.png"));
  EXPECT_FALSE(fs::exists(tmp / "out" / "img_b.png"));
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1]["status"], "failed");
  EXPECT_NE(lines[1]["error"].get<std::string>().find("img_b.png"), std::string::npos);
}

TEST(SdbDeblur, ForeignCheckpointAndMissingMasksAreClearErrors) {
  if (!samdeblur::test::app_built("sdb-deblur")) GTEST_SKIP() << "apps not built";
  const samdeblur::test::TempDir tmp("deblur_errors");
  const AppResult foreign = run_deblur({"-q", kData + "/input", "-o", tmp.str(), "--checkpoint",
                                        samdeblur::test::tiny_sam_checkpoint()});
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.err.find("fits no known network"), std::string::npos) << foreign.err;
  const AppResult no_masks = run_deblur({"-q", kData + "/input", "-o", tmp.str(), "--checkpoint",
                                         kData + "/checkpoints/SegNAFNet.pth"});
  EXPECT_EQ(no_masks.exit_code, 1);
  EXPECT_NE(no_masks.err.find("--masks-dir"), std::string::npos) << no_masks.err;
}
