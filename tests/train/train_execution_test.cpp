// train.memory_format: the key's parsing, and a training step in channels-last
// with the fused kernels' hand-written backward against the default (exact)
// path: the same loss and gradients within float32 rounding, and a short
// sdb-train run with the same losses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "samdeblur/core/error.h"
#include "samdeblur/models/layers.h"
#include "samdeblur/models/network.h"
#include "samdeblur/train/bench.h"
#include "samdeblur/train/loss.h"
#include "samdeblur/train/train_config.h"
#include "samdeblur/train/trainer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace sm = samdeblur::models;
using namespace samdeblur;

namespace {

const std::string kSource = test::source_path("");

train::TrainConfig tiny_config(const std::string& variant, const fs::path& dir,
                               std::vector<std::string> extra = {}) {
  auto o = test::tiny_train_overrides(dir, variant == "SegNAFNet");
  o.insert(o.end(), extra.begin(), extra.end());
  return train::load_train_config(kSource + "configs/train/tiny/" + variant + ".yml", o);
}

std::string config_error(const std::vector<std::string>& extra) {
  const test::TempDir tmp("mf");
  try {
    tiny_config("NAFNet", tmp / "run", extra);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Loss and every parameter gradient of one training step (the trainer's loss:
// PSNRLoss + 0 * sum(params)), the masks' dropout drawn from seed 7.
struct Step {
  double loss = 0;
  std::vector<torch::Tensor> grads;
};

Step train_step(sm::DeblurNetImpl& net, const torch::Tensor& lq, const torch::Tensor& gt,
                const std::vector<sm::SegMasks>& masks) {
  net.train();
  for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
  torch::manual_seed(7);
  const auto pred = net.forward(lq, masks);
  EXPECT_TRUE(pred.is_contiguous());
  const auto loss = train::psnr_loss(pred, gt);
  auto zero_term = torch::zeros({}, loss.options());
  for (const auto& p : net.parameters()) zero_term = zero_term + p.sum();
  (loss + 0.0 * zero_term).backward();
  Step s;
  s.loss = loss.item<double>();
  for (const auto& p : net.parameters()) s.grads.push_back(p.grad().clone());
  return s;
}

}  // namespace

TEST(TrainMemoryFormat, ParsesTheKeyAndTheOlderSpelling) {
  const test::TempDir tmp("mf");
  EXPECT_TRUE(tiny_config("NAFNet", tmp / "a").train.execution().is_default());
  for (const std::string set : {"train.memory_format=channels_last", "train.channels_last=true"}) {
    const auto e = tiny_config("NAFNet", tmp / "b", {set}).train.execution();
    EXPECT_TRUE(e.channels_last && e.fused) << set;
    EXPECT_EQ(e.dtype, torch::kFloat) << set;
  }
  const std::string bad = config_error({"train.memory_format=nhwc"});
  EXPECT_NE(bad.find("train.memory_format"), std::string::npos) << bad;
  EXPECT_NE(bad.find("channels_last"), std::string::npos) << bad;  // lists the valid values
  const std::string both =
      config_error({"train.memory_format=contiguous", "train.channels_last=true"});
  EXPECT_NE(both.find("train.channels_last"), std::string::npos) << both;
  // Inference's default is not a training layout: refused by name.
  const std::string inference = config_error({"train.memory_format=auto"});
  EXPECT_NE(inference.find("train.memory_format"), std::string::npos) << inference;
  EXPECT_NE(inference.find("inference"), std::string::npos) << inference;
}

TEST(TrainMemoryFormat, ChannelsLastStepEqualsTheDefaultWithinFp32Rounding) {
  const test::TempDir tmp("mf");
  for (const std::string variant : {"NAFNet", "SegNAFNet"}) {
    SCOPED_TRACE(variant);
    const auto cfg = tiny_config(variant, tmp / variant, {"train.memory_format=channels_last"});
    torch::manual_seed(3);
    auto net = sm::build_network(cfg.network_g);
    {
      torch::NoGradGuard no_grad;  // beta / gamma are zero at construction
      for (auto& p : net->parameters()) p.uniform_(-0.3, 0.3);
    }
    const int64_t b = 2, h = 24, w = 32;
    const auto lq = torch::rand({b, 3, h, w}), gt = torch::rand({b, 3, h, w});
    std::vector<sm::SegMasks> masks;
    if (net->needs_masks())
      for (int64_t i = 0; i < b; ++i)
        masks.push_back(
            sm::SegMasks::from_labels(torch::randint(0, 6, {h, w}, torch::kLong), 6, 1.0 / 255.0));
    const Step exact = train_step(*net, lq, gt, masks);
    net->set_execution(cfg.train.execution());  // as the trainer does
    sm::set_fused_backward(*net, true);
    const Step fast = train_step(*net, lq, gt, masks);
    EXPECT_NEAR(fast.loss, exact.loss, 1e-5 * std::max(1.0, std::abs(exact.loss)));
    ASSERT_EQ(fast.grads.size(), exact.grads.size());
    const auto names = net->named_parameters();
    for (size_t i = 0; i < exact.grads.size(); ++i) {
      const double scale = std::max(1e-3, exact.grads[i].abs().max().item<double>());
      test::expect_close(fast.grads[i], exact.grads[i], 2e-4 * scale, "grad of " + names[i].key());
    }
    // Back to the default: the exact step again, bit for bit.
    net->set_execution({});
    const Step again = train_step(*net, lq, gt, masks);
    EXPECT_EQ(again.loss, exact.loss);
    for (size_t i = 0; i < exact.grads.size(); ++i)
      EXPECT_TRUE(torch::equal(again.grads[i], exact.grads[i])) << names[i].key();
  }
}

TEST(TrainMemoryFormat, ShortRunHasTheDefaultsLosses) {
  const test::TempDir tmp("mf");
  std::vector<std::vector<double>> losses;
  for (const std::string format : {"contiguous", "channels_last"}) {
    const auto cfg = tiny_config("NAFNet", tmp / format,
                                 {"train.total_iter=4", "val.val_freq=1000", "logger.print_freq=2",
                                  "logger.use_tb_logger=false", "train.memory_format=" + format});
    train::TrainerOptions opt;
    opt.progress = false;
    train::Trainer trainer(cfg, opt);
    const auto r = trainer.run();
    ASSERT_EQ(r.status, train::TrainStatus::finished);
    losses.push_back(r.losses);
  }
  ASSERT_EQ(losses[0].size(), 4u);
  ASSERT_EQ(losses[1].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(losses[1][i], losses[0][i], 1e-3) << "iter " << i;
}

TEST(TrainMemoryFormat, BenchTimesBothPathsInterleaved) {
  train::TrainBenchOptions o;
  o.batch = 1;
  o.size = 16;
  o.num_masks = 3;
  o.warmup = 1;
  o.repeat = 1;
  o.execution = sm::parse_execution("fp32", "channels_last", "test");
  o.ab = true;
  std::vector<train::BenchResult> got;
  train::bench_train("SegNAFNet", o, torch::kCPU,
                     [&](const train::BenchResult& r) { got.push_back(r); });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].name, "SegNAFNet-w32 train B1 16x16 M=3");
  EXPECT_EQ(got[1].name, "SegNAFNet-w32 train B1 16x16 M=3 [fp32 channels_last fused]");
  for (const auto& r : got) {
    EXPECT_EQ(r.timing.runs, 1);
    EXPECT_GT(r.timing.first_ms, 0.0);
    EXPECT_GT(r.gflop, 0.0);
  }
}
