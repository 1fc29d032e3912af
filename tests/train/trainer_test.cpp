// sdb-train: config parsing and strict errors, a short run whose loss falls,
// exact resume, non-finite loss handling, TensorBoard / JSON-lines output,
// SIGINT on a child sdb-train, and 2-process DDP equality through the app.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/train/checkpoint.h"
#include "samdeblur/train/tb_writer.h"
#include "samdeblur/train/train_config.h"
#include "samdeblur/train/trainer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

const std::string kSource = test::source_path("");

// The tiny demo config with absolute data paths and the run folder in `dir`.
std::vector<std::string> tiny_overrides(const fs::path& dir, bool masks,
                                        std::vector<std::string> extra = {}) {
  std::vector<std::string> o = test::tiny_train_overrides(dir, masks);
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

train::TrainConfig tiny_config(const std::string& variant, const fs::path& dir,
                               std::vector<std::string> extra = {}) {
  return train::load_train_config(kSource + "configs/train/tiny/" + variant + ".yml",
                                  tiny_overrides(dir, variant == "SegNAFNet", std::move(extra)));
}

train::TrainResult run_training(const train::TrainConfig& cfg, const std::string& resume = "") {
  train::TrainerOptions opt;
  opt.progress = false;
  opt.resume = resume;
  train::Trainer trainer(cfg, opt);
  return trainer.run();
}

std::string config_error(const std::string& variant, const std::vector<std::string>& extra) {
  const test::TempDir tmp("err");
  try {
    const auto cfg = tiny_config(variant, tmp / "run", extra);
    train::check_data(cfg);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("Error: ") + e.what();
  }
  return "";
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> app_args(const std::string& variant, const fs::path& dir,
                                  std::vector<std::string> extra) {
  std::vector<std::string> a = {"-q", "--threads", "1", "-c",
                                kSource + "configs/train/tiny/" + variant + ".yml"};
  for (const auto& flag : test::set_flags(tiny_overrides(dir, variant == "SegNAFNet")))
    a.push_back(flag);
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

}  // namespace

// ------------------------------------------------------------------ config --
TEST(TrainConfig, OurGoProConfigsParse) {
  for (const char* v : {"NAFNet", "MaskNAFNet", "SegNAFNet-no-dropout", "SegNAFNet"}) {
    const auto cfg =
        train::load_train_config(kSource + "configs/train/GoPro/" + std::string(v) + ".yml");
    EXPECT_EQ(cfg.train.total_iter, 200000) << v;
    EXPECT_EQ(cfg.train_set.batch_size_per_gpu, 32);
    EXPECT_EQ(cfg.train_set.gt_size, 256);
    EXPECT_EQ(cfg.val_freq, 10000);
    EXPECT_EQ(cfg.logger.save_checkpoint_freq, 5000);
    EXPECT_EQ(cfg.train.optim_g.type, "AdamW");
    EXPECT_DOUBLE_EQ(*cfg.train.optim_g.weight_decay, 1e-3);
    EXPECT_DOUBLE_EQ(std::get<1>(cfg.train.optim_g.betas), 0.9);
    EXPECT_EQ(cfg.train.scheduler.T_max, 200000);
    EXPECT_TRUE(cfg.train.use_grad_clip);
    EXPECT_EQ(cfg.val_datasets.size(), 1u);
    EXPECT_EQ(cfg.network_g.enc_blk_nums, (std::vector<int64_t>{1, 1, 1, 28}));
  }
}

TEST(TrainConfig, OfficialConfigsParseUnchanged) {
  const std::string dir = "/tmp/ref/sam-deblur/options/train/GoPro";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "official SAM-Deblur checkout not at " << dir;
  for (const char* v : {"NAFNet", "MaskNAFNet", "SegNAFNet-no-dropout", "SegNAFNet"}) {
    const auto cfg = train::load_train_config(dir + "/" + v + ".yml");
    EXPECT_EQ(cfg.name, std::string(v) + "-GoPro");
    EXPECT_EQ(cfg.train.total_iter, 200000);
    EXPECT_EQ(cfg.dist_backend, "nccl");
  }
}

TEST(TrainConfig, ErrorsNameTheKey) {
  EXPECT_NE(config_error("NAFNet", {"train.optim_g.lrr=1"}).find("train.optim_g.lrr"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"train.total_iter=abc"}).find("train.total_iter"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"datasets.train.gt_sise=16"}).find("datasets.train.gt_sise"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"datasets.train.batch_size_per_gpu=two"})
                .find("datasets.train.batch_size_per_gpu"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"logger.print_frq=1"}).find("logger.print_frq"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"train.scheduler.type=Nope"}).find("train.scheduler.type"),
            std::string::npos);
  EXPECT_NE(config_error("NAFNet", {"network_g.widht=8"}).find("network_g.widht"),
            std::string::npos);
  const std::string missing =
      config_error("NAFNet", {"datasets.train.dataroot_lq=/nonexistent/lq"});
  EXPECT_NE(missing.find("datasets.train.dataroot_lq"), std::string::npos) << missing;
  EXPECT_NE(missing.find("/nonexistent/lq"), std::string::npos) << missing;
  const test::TempDir tmp("empty");
  const fs::path empty = tmp / "run";
  fs::create_directories(empty);
  const std::string none = config_error("NAFNet", {"datasets.val.dataroot_gt=" + empty.string()});
  EXPECT_NE(none.find("datasets.val"), std::string::npos) << none;
  EXPECT_EQ(config_error("NAFNet", {}), "");
}

// --------------------------------------------------------------- training --
TEST(Trainer, ShortRunLossFallsAndWritesEverything) {
  const test::TempDir tmp("e2e");
  const fs::path dir = tmp / "run";
  const auto cfg = tiny_config("NAFNet", dir,
                               {"train.total_iter=40", "val.val_freq=20", "logger.print_freq=10"});
  const auto r = run_training(cfg);
  ASSERT_EQ(r.status, train::TrainStatus::finished);
  ASSERT_EQ(r.losses.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 8; ++i) {
    first += r.losses[i] / 8;
    last += r.losses[32 + i] / 8;
  }
  // PSNRLoss is -PSNR: it falls as the restoration improves.
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;

  // Checkpoints: BasicSR weights loadable as sdb-eval does, best and latest.
  for (const char* f :
       {"models/net_g_40.pth", "models/net_g_latest.pth", "models/net_g_best.pth", "config.yml"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  EXPECT_EQ(io::load_state_dict_file((dir / "models/net_g_40.pth").string()).size() > 0, true);
  train::CheckpointManager mgr(dir.string(), 2);
  EXPECT_EQ(mgr.list().size(), 2u);  // keep_last 2: 40 and 20
  EXPECT_TRUE(std::isfinite(r.best_psnr));

  // JSON lines: train at 1, 10, 20, 30, 40; val at 1, 20, 40.
  int train_lines = 0, val_lines = 0;
  for (const auto& j : read_jsonl(dir / "metrics.jsonl")) {
    if (j["type"] == "train") ++train_lines;
    if (j["type"] == "val") {
      ++val_lines;
      EXPECT_TRUE(j.contains("psnr") && j.contains("ssim") && j.contains("mcr"));
    }
  }
  EXPECT_EQ(train_lines, 5);
  EXPECT_EQ(val_lines, 3);

  // TensorBoard file: parsed with CRC checks; loss scalars at the logged steps.
  std::string events;
  for (const auto& e : fs::directory_iterator(dir / "tb_logger")) events = e.path().string();
  ASSERT_FALSE(events.empty());
  const auto ev = train::read_tb_events(events);
  EXPECT_EQ(ev.at(0).file_version, "brain.Event:2");
  std::vector<int64_t> steps;
  for (const auto& e : ev)
    for (const auto& v : e.values)
      if (v.tag == "losses/l_pix") steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 10, 20, 30, 40}));

  // The plot script turns the JSON lines into a PNG (pure-python fallback).
  const std::string png = (dir / "curves.png").string();
  if (test::python_has("sys")) {
    const auto py = test::run_python(
        {kSource + "scripts/plot_training.py", (dir / "metrics.jsonl").string(), "-o", png});
    ASSERT_EQ(py.exit_code, 0) << py.output();
    const auto bytes = read_file_bytes(png);
    ASSERT_GT(bytes.size(), 8u);
    EXPECT_EQ(std::string(bytes.begin() + 1, bytes.begin() + 4), "PNG");
  }
}

TEST(Trainer, ResumeGivesTheSameLosses) {
  // SegNAFNet: mask dropout draws from the torch RNG, so its state must resume too.
  const test::TempDir tmp("resume");
  const fs::path a = tmp / "straight", b = tmp / "split";
  const std::vector<std::string> common = {"val.val_freq=0", "logger.save_checkpoint_freq=100"};
  auto with = [&](std::vector<std::string> v, const std::string& extra) {
    v.push_back(extra);
    return v;
  };
  const auto straight =
      run_training(tiny_config("SegNAFNet", a, with(common, "train.total_iter=10")));
  ASSERT_EQ(straight.losses.size(), 10u);
  const auto first = run_training(tiny_config("SegNAFNet", b, with(common, "train.total_iter=5")));
  ASSERT_EQ(first.iter, 5);
  const auto second =
      run_training(tiny_config("SegNAFNet", b, with(common, "train.total_iter=10")), "auto");
  EXPECT_EQ(second.start_iter, 5);
  ASSERT_EQ(second.losses.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(first.losses[i], straight.losses[i], 1e-6) << i;
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(second.losses[i], straight.losses[5 + i], 1e-6) << 5 + i;
  // Same final weights too.
  const auto wa = io::load_state_dict_file((a / "models/net_g_10.pth").string());
  const auto wb = io::load_state_dict_file((b / "models/net_g_10.pth").string());
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i)
    EXPECT_LT((wa[i].second - wb[i].second).abs().max().item<double>(), 1e-6) << wa[i].first;
}

TEST(Trainer, NonFiniteLossStopsOrSkips) {
  const test::TempDir tmp("nan");
  const fs::path dir = tmp / "run";
  auto cfg = tiny_config(
      "NAFNet", dir, {"train.total_iter=4", "val.val_freq=0", "train.pixel_opt.loss_weight=.nan"});
  const auto r = run_training(cfg);
  EXPECT_EQ(r.status, train::TrainStatus::nonfinite);
  EXPECT_EQ(r.iter, 0);
  EXPECT_NE(r.message.find("non-finite loss"), std::string::npos) << r.message;
  EXPECT_EQ(train::exit_code_for(r), 3);
  EXPECT_TRUE(train::CheckpointManager(dir.string()).list().empty());  // nothing written

  const fs::path dir2 = tmp / "nan_skip";
  auto cfg2 = tiny_config("NAFNet", dir2,
                          {"train.total_iter=4", "val.val_freq=0",
                           "train.pixel_opt.loss_weight=.nan", "train.skip_nonfinite=true"});
  const auto r2 = run_training(cfg2);
  EXPECT_EQ(r2.status, train::TrainStatus::finished);
  EXPECT_EQ(r2.iter, 4);
  EXPECT_TRUE(fs::exists(dir2 / "models/net_g_4.pth"));  // final checkpoint still written
}

// ------------------------------------------------------------ executables --
// SIGINT and SIGTERM: the child stops at the next iteration boundary, saves a
// checkpoint and exits 128 + signal; after SIGINT the run resumes from it.
struct SignalCase {
  const char* name;
  int signal;
  int exit_code;
  size_t logged_before_signal;  // iterations in metrics.jsonl before the signal
  bool resume;                  // resume and finish two more iterations
};

void PrintTo(const SignalCase& c, std::ostream* os) { *os << c.name; }

class SdbTrainSignal : public ::testing::TestWithParam<SignalCase> {};

TEST_P(SdbTrainSignal, SavesACheckpointAndExitsWith128PlusSignal) {
  const SignalCase& c = GetParam();
  const test::TempDir tmp(c.name);
  const fs::path dir = tmp / "run";
  const pid_t pid = test::start_app(
      "sdb-train", app_args("NAFNet", dir,
                            {"--set", "train.total_iter=100000", "--set", "val.val_freq=0", "--set",
                             "logger.print_freq=1", "--set", "train.scheduler.T_max=100000"}));
  // Wait for a few logged iterations.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(dir / "metrics.jsonl") &&
        read_jsonl(dir / "metrics.jsonl").size() >= c.logged_before_signal)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, c.signal);
  bool killed = true;
  const int code = test::wait_for_exit(pid, &killed);
  ASSERT_FALSE(killed) << "the child died of the signal instead of exiting";
  EXPECT_EQ(code, c.exit_code);
  train::CheckpointManager mgr(dir.string());
  const std::string ckpt = mgr.resolve_resume("auto");
  ASSERT_FALSE(ckpt.empty());
  if (!c.resume) return;
  const auto bytes = read_file_bytes(ckpt);
  const int64_t iter = nlohmann::json::parse(bytes.begin(), bytes.end())["iter"];
  EXPECT_GE(iter, 3);
  // Resume and finish two more iterations.
  const auto resumed = test::run_app(
      "sdb-train",
      app_args("NAFNet", dir,
               {"--set", "train.total_iter=" + std::to_string(iter + 2), "--set", "val.val_freq=0",
                "--set", "train.scheduler.T_max=100000", "--resume", "auto"}));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output();
  EXPECT_TRUE(fs::exists(dir / ("models/net_g_" + std::to_string(iter + 2) + ".pth")));
}

INSTANTIATE_TEST_SUITE_P(Signals, SdbTrainSignal,
                         ::testing::Values(SignalCase{"sigint", SIGINT, 130, 3, true},
                                           SignalCase{"sigterm", SIGTERM, 143, 2, false}),
                         [](const ::testing::TestParamInfo<SignalCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(SdbTrain, ConfigErrorExitsBeforeTraining) {
  const test::TempDir tmp("cfgerr");
  const fs::path dir = tmp / "run";
  const auto r =
      test::run_app("sdb-train", app_args("NAFNet", dir, {"--set", "train.optim_g.betas=[0.9]"}));
  EXPECT_EQ(r.exit_code, 1) << r.output();
  EXPECT_FALSE(fs::exists(dir / "training_states"));
}

TEST(SdbTrain, TwoProcessesMatchOneProcess) {
  if (!train::distributed_available()) GTEST_SKIP() << "built without Gloo headers (libgloo-dev)";
  // 2 x batch 2 vs 1 x batch 4: same samples per step (DistributedSampler
  // interleaving), averaged gradients, K = 3 steps.
  const test::TempDir tmp("ddp");
  const fs::path one = tmp / "ddp1", two = tmp / "ddp2";
  const std::vector<std::string> common = {"--set", "train.total_iter=3",
                                           "--set", "val.val_freq=3",
                                           "--set", "datasets.train.use_shuffle=true"};
  auto args1 = app_args("NAFNet", one, common);
  args1.insert(args1.end(), {"--set", "datasets.train.batch_size_per_gpu=4"});
  auto args2 = app_args("NAFNet", two, common);
  args2.insert(args2.end(),
               {"--set", "datasets.train.batch_size_per_gpu=2", "--nproc-per-node", "2"});
  const auto r1 = test::run_app("sdb-train", args1);
  ASSERT_EQ(r1.exit_code, 0) << r1.output();
  const auto r2 = test::run_app("sdb-train", args2);
  ASSERT_EQ(r2.exit_code, 0) << r2.output();
  const auto w1 = io::load_state_dict_file((one / "models/net_g_3.pth").string());
  const auto w2 = io::load_state_dict_file((two / "models/net_g_3.pth").string());
  ASSERT_EQ(w1.size(), w2.size());
  double worst = 0;
  for (std::size_t i = 0; i < w1.size(); ++i)
    worst = std::max(worst, (w1[i].second - w2[i].second).abs().max().item<double>());
  EXPECT_LT(worst, 1e-5);
  // Sharded validation reduces to the same numbers.
  auto last_val = [](const fs::path& d) {
    nlohmann::json v;
    for (const auto& j : read_jsonl(d / "metrics.jsonl"))
      if (j["type"] == "val") v = j;
    return v;
  };
  const auto v1 = last_val(one), v2 = last_val(two);
  EXPECT_EQ(v1["images"], v2["images"]);
  EXPECT_NEAR(v1["psnr"].get<double>(), v2["psnr"].get<double>(), 1e-3);
}
