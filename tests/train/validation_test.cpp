// The training config composes the evaluation parsers (strict keys, one
// validation of datasets.train), and sdb-train's validation computes exactly
// what sdb-eval computes for the same checkpoint and data.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/train/train_config.h"
#include "samdeblur/train/trainer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

const std::string kConfig = test::source_path("configs/train/tiny/NAFNet.yml");

std::vector<std::string> overrides(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = test::tiny_train_overrides(dir);
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

std::string parse_error(const std::vector<std::string>& extra) {
  const test::TempDir tmp("err");
  try {
    train::load_train_config(kConfig, overrides(tmp / "run", extra));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainConfig, TrainSetIsValidatedOnceWithFileAndKey) {
  // prefetch: 0 used to pass the parser and fail later in the loader.
  const std::string e = parse_error({"datasets.train.prefetch=0"});
  EXPECT_NE(e.find("datasets.train.prefetch"), std::string::npos) << e;
  EXPECT_NE(e.find("NAFNet.yml"), std::string::npos) << e;
  const std::string rot = parse_error({"datasets.train.mask_rotation=sideways"});
  EXPECT_NE(rot.find("datasets.train.mask_rotation"), std::string::npos) << rot;
  const std::string gt = parse_error({"datasets.train.gt_size=0"});
  EXPECT_NE(gt.find("datasets.train.gt_size"), std::string::npos) << gt;
  EXPECT_NE(gt.find("NAFNet.yml"), std::string::npos) << gt;
  const std::string net = parse_error({"network_g.width=0"});
  EXPECT_NE(net.find("network_g.width"), std::string::npos) << net;
  EXPECT_NE(net.find("NAFNet.yml"), std::string::npos) << net;
  const std::string metric = parse_error({"val.metrics.psnr.type=calculate_lpips"});
  EXPECT_NE(metric.find("val.metrics.psnr.type"), std::string::npos) << metric;
  EXPECT_NE(metric.find("calculate_psnr, calculate_ssim"), std::string::npos) << metric;
  // Unknown top-level keys are still caught (they used to be, by the eval parser).
  const std::string top = parse_error({"nmae=x"});
  EXPECT_NE(top.find("nmae"), std::string::npos) << top;
  EXPECT_EQ(parse_error({}), "");
}

TEST(TrainConfig, NoValidationSetNeedsNoThrowawayCopy) {
  const test::TempDir tmp("noval");
  const fs::path dir = tmp / "run";
  YAML::Node root = config::load_yaml_file(kConfig);
  root["datasets"].remove("val");
  root["val"]["val_freq"] = 0;
  for (const auto& o : overrides(dir)) {
    if (o.rfind("datasets.val.", 0) != 0) config::apply_override(root, o);
  }
  const auto cfg = train::parse_train_config(root, "noval.yml");
  EXPECT_TRUE(cfg.val_datasets.empty());
  EXPECT_EQ(cfg.train_set.base.key, "train");
  EXPECT_EQ(cfg.train_set.gt_size, 16);
  EXPECT_EQ(cfg.val.metrics.size(), 2u);
}

TEST(SdbTrain, CheckRejectsPrefetchZeroNamingTheKey) {
  const test::TempDir tmp("check");
  const fs::path dir = tmp / "run";
  fs::create_directories(dir);
  std::vector<std::string> args = {"--check", "-c", kConfig};
  for (const auto& flag : test::set_flags(overrides(dir, {"datasets.train.prefetch=0"})))
    args.push_back(flag);
  const auto r = test::run_app("sdb-train", args);
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_NE(r.output().find("datasets.train.prefetch"), std::string::npos) << r.output();
}

TEST(Trainer, ValidationEqualsSdbEvalOnTheSameCheckpoint) {
  const test::TempDir tmp("same");
  const fs::path dir = tmp / "run";
  const auto cfg = train::load_train_config(
      kConfig, overrides(dir, {"train.total_iter=2", "val.val_freq=2", "logger.print_freq=1",
                               "logger.use_tb_logger=false"}));
  train::TrainerOptions opt;
  opt.progress = false;
  train::Trainer trainer(cfg, opt);
  ASSERT_EQ(trainer.run().status, train::TrainStatus::finished);
  nlohmann::json last_val;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "val" && j["iter"] == 2) last_val = j;
  }
  ASSERT_FALSE(last_val.is_null());

  eval::EvalConfig e = cfg.eval_view();
  e.path.pretrain_network_g = (dir / "models/net_g_latest.pth").string();
  eval::RunOptions run;
  run.output_dir = (dir / "eval").string();
  run.progress = false;
  const auto result = eval::run_evaluation(e, run);
  ASSERT_EQ(result.datasets.size(), 1u);
  const auto& d = result.datasets[0];
  EXPECT_EQ(last_val["images"].get<double>(), static_cast<double>(d.images.size()));
  for (std::size_t k = 0; k < d.metric_names.size(); ++k)
    EXPECT_DOUBLE_EQ(last_val[d.metric_names[k]].get<double>(), d.means[k]) << d.metric_names[k];
  EXPECT_DOUBLE_EQ(last_val["psnr_input"].get<double>(), d.mean_psnr_input);
  EXPECT_DOUBLE_EQ(last_val["mcr"].get<double>(), d.mcr);
}
