// End-to-end: the real sdb-eval executable on the committed tiny benchmark
// (tests/data/eval, made by scripts/make_eval_fixtures.py with the official
// SAM-Deblur code) must reproduce the official outputs and metrics.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/test_support.h"
#include "support/tiny_networks.h"

namespace fs = std::filesystem;

namespace {

using samdeblur::test::read_text;

const std::string kData = samdeblur::test::data_path("eval");

using Variant = samdeblur::test::FixtureNetwork;

std::string config_for(const Variant& v, const std::string& data) {
  std::ostringstream y;
  y << "name: e2e-" << v.name
    << "\nmodel_type: ImageRestorationModel\nscale: 1\nnum_gpu: 1\nmanual_seed: 10\n";
  if (v.dataset_type == "PairedImageGroupMaskDataset") y << "grouped_masks: true\n";
  y << "datasets:\n  test:\n    name: tiny\n    type: " << v.dataset_type << "\n"
    << "    dataroot_gt: " << data << "/target\n    dataroot_lq: " << data << "/input\n";
  if (!v.mask_dir.empty()) y << "    dataroot_mask: " << data << "/" << v.mask_dir << "\n";
  y << "    io_backend:\n      type: disk\n";
  y << "network_g:\n  type: " << v.type
    << "\n  width: 8\n  enc_blk_nums: [1, 1]\n  middle_blk_num: 1\n"
    << "  dec_blk_nums: [1, 1]\n"
    << v.extra;
  y << "path:\n  pretrain_network_g: " << data << "/checkpoints/" << v.name
    << ".pth\n  strict_load_g: true\n"
    << "  resume_state: ~\n";
  y << "val:\n  save_img: true\n  grids: false\n  metrics:\n    psnr:\n      type: calculate_psnr\n"
    << "      crop_border: 0\n      test_y_channel: false\n    ssim:\n      type: calculate_ssim\n"
    << "      crop_border: 0\n      test_y_channel: false\n";
  y << "dist_params:\n  backend: nccl\n  port: 29500\n";
  return y.str();
}

// sdb-eval -q <args>.
samdeblur::test::AppResult run_eval(std::vector<std::string> args) {
  args.insert(args.begin(), "-q");
  return samdeblur::test::run_app("sdb-eval", args);
}

// A copy of the tiny benchmark's input/ and target/ in work/data and work/cfg.yml, the NAFNet
// fixture's config on it (with the committed checkpoint): for tests that damage the data.
std::string config_on_a_copy(const fs::path& work) {
  fs::create_directories(work / "data");
  fs::copy(kData + "/input", work / "data" / "input");
  fs::copy(kData + "/target", work / "data" / "target");
  std::string cfg =
      config_for(samdeblur::test::fixture_network("NAFNet"), (work / "data").string());
  const std::string copied = (work / "data").string() + "/checkpoints/NAFNet.pth";
  cfg.replace(cfg.find(copied), copied.size(), kData + "/checkpoints/NAFNet.pth");
  return samdeblur::test::write_text(work / "cfg.yml", cfg);
}

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

class SdbEvalParity : public ::testing::TestWithParam<Variant> {};

}  // namespace

TEST_P(SdbEvalParity, MatchesOfficialPipeline) {
  const Variant v = GetParam();
  const nlohmann::json expected = nlohmann::json::parse(read_text(kData + "/expected.json"));
  const auto& exp_images = expected["models"][v.name]["images"];
  const samdeblur::test::TempDir tmp("eval_e2e");
  const fs::path work = tmp.path();
  const std::string cfg = samdeblur::test::write_text(work / "cfg.yml", config_for(v, kData));
  // --set also exercised: threshold 1 dB makes some images "collapsed".
  const auto r = run_eval(
      {"--config", cfg, "--output", (work / "out").string(), "--set", "val.mcr_threshold=1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.output();

  const auto rows = read_csv(work / "out" / "metrics.csv");
  ASSERT_EQ(rows.size(), 4u);
  const auto& header = rows[0];
  auto col = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << "column " << name;
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t c_name = col("name"), c_psnr = col("psnr"), c_ssim = col("ssim"),
                    c_in = col("psnr_input"), c_col = col("collapsed");
  double sum_psnr = 0, sum_ssim = 0;
  int collapsed = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::string name = rows[i][c_name];
    ASSERT_TRUE(exp_images.contains(name)) << name;
    const auto& e = exp_images[name];
    const double psnr = std::stod(rows[i][c_psnr]), ssim = std::stod(rows[i][c_ssim]);
    EXPECT_NEAR(psnr, e["psnr"].get<double>(), 5e-3) << name;
    EXPECT_NEAR(ssim, e["ssim"].get<double>(), 1e-4) << name;
    EXPECT_NEAR(std::stod(rows[i][c_in]), e["psnr_input"].get<double>(), 1e-6) << name;
    const bool exp_collapsed = e["psnr_input"].get<double>() - e["psnr"].get<double>() > 1.0;
    EXPECT_EQ(rows[i][c_col], exp_collapsed ? "1" : "0") << name;
    collapsed += exp_collapsed;
    sum_psnr += e["psnr"].get<double>();
    sum_ssim += e["ssim"].get<double>();
    // Output images: at most off by one grey level on a handful of pixels.
    const cv::Mat ours =
        cv::imread((work / "out" / "images" / (name + ".png")).string(), cv::IMREAD_UNCHANGED);
    const cv::Mat ref =
        cv::imread(kData + "/expected_" + v.name + "_" + name + ".png", cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(ours.empty()) << name;
    ASSERT_EQ(ours.size(), ref.size());
    cv::Mat diff;
    cv::absdiff(ours, ref, diff);
    double max_diff = 0;
    cv::minMaxLoc(diff.reshape(1), nullptr, &max_diff);
    EXPECT_LE(max_diff, 1.0) << name;
    EXPECT_LE(cv::countNonZero(diff.reshape(1)), static_cast<int>(diff.total() * 3 / 200)) << name;
  }
  const nlohmann::json summary = nlohmann::json::parse(read_text(work / "out" / "summary.json"));
  EXPECT_EQ(summary["count"].get<int>(), 3);
  EXPECT_NEAR(summary["psnr"].get<double>(), sum_psnr / 3, 5e-3);
  EXPECT_NEAR(summary["ssim"].get<double>(), sum_ssim / 3, 1e-4);
  EXPECT_NEAR(summary["mcr"].get<double>(), collapsed / 3.0, 1e-12);
  EXPECT_TRUE(summary.contains("config"));
  EXPECT_EQ(summary["config"]["val"]["mcr_threshold"].get<double>(), 1.0);
  EXPECT_TRUE(fs::exists(work / "out" / "config.yml"));
  // timing.json: every image's load / network / rest seconds (scripts/bench_eval.sh).
  const nlohmann::json timing = nlohmann::json::parse(read_text(work / "out" / "timing.json"));
  EXPECT_GE(timing["setup_seconds"].get<double>(), 0.0);
  ASSERT_EQ(timing["datasets"].size(), 1u);
  const auto& images = timing["datasets"][0]["images"];
  ASSERT_EQ(images.size(), 3u);
  for (std::size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(images[i]["name"].get<std::string>(), rows[i + 1][c_name]);
    const double load = images[i]["load_seconds"].get<double>();
    const double net = images[i]["infer_seconds"].get<double>();
    EXPECT_GT(net, 0.0);
    EXPECT_GE(load, 0.0);
    EXPECT_GE(images[i]["post_seconds"].get<double>(), 0.0);
    EXPECT_GE(images[i]["total_seconds"].get<double>(), net);
    EXPECT_GE(images[i]["infer_minor_faults"].get<int64_t>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Official, SdbEvalParity,
                         ::testing::ValuesIn(samdeblur::test::fixture_networks()),
                         samdeblur::test::fixture_network_test_name);

// Bad input: a clear error naming the file, a non-zero exit code, no outputs.
TEST(SdbEvalErrors, MissingPartnerAndSizeMismatch) {
  const samdeblur::test::TempDir tmp("eval_errors");
  const fs::path work = tmp.path();
  const std::string cfg_path = config_on_a_copy(work);

  // 1. An input renamed: its gt has no partner.
  fs::rename(work / "data" / "input" / "img_b.png", work / "data" / "input" / "img_x.png");
  auto r = run_eval({"--config", cfg_path, "--output", (work / "out").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output().find("img_b"), std::string::npos) << r.output();
  EXPECT_FALSE(fs::exists(work / "out" / "summary.json"));
  fs::rename(work / "data" / "input" / "img_x.png", work / "data" / "input" / "img_b.png");

  // 2. Input and target sizes differ.
  fs::copy_file(kData + "/input/img_a.png", work / "data" / "input" / "img_b.png",
                fs::copy_options::overwrite_existing);
  r = run_eval({"--config", cfg_path, "--output", (work / "out").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output().find("size mismatch"), std::string::npos) << r.output();
  EXPECT_NE(r.output().find("img_b.png"), std::string::npos) << r.output();
  EXPECT_FALSE(fs::exists(work / "out" / "summary.json"));

  // 3. A misspelt key is an error naming it.
  r = run_eval({"--config", cfg_path, "--set", "val.sav_img=true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output().find("val.sav_img"), std::string::npos) << r.output();
}

// --check reads every input file through eval::check_inputs: a truncated image is named and
// the exit code is 1, before any dataset is listed.
TEST(SdbEvalErrors, CheckNamesATruncatedInput) {
  const samdeblur::test::TempDir tmp("eval_check");
  const std::string cfg = config_on_a_copy(tmp.path());
  auto r = run_eval({"--check", "--config", cfg});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_NE(r.out.find("tiny (PairedImageDataset): 3 samples"), std::string::npos) << r.out;

  const fs::path truncated = tmp / "data" / "input" / "img_b.png";
  const std::string bytes = read_text(truncated);
  samdeblur::test::write_text(truncated, bytes.substr(0, bytes.size() / 2));
  r = run_eval({"--check", "--config", cfg});
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_NE(r.err.find(truncated.string() + ": truncated or corrupt PNG"), std::string::npos)
      << r.output();
  EXPECT_EQ(r.out.find("samples"), std::string::npos) << r.out;
}
