// Learning-rate schedules, optimizers and gradient clipping against the
// official training loop (tests/data/train/{lr,optim}.npz and meta.json,
// written by scripts/make_train_fixtures.py: torch 1.13 schedulers and
// optimizers driven by the official BaseModel.update_learning_rate).
#include "samdeblur/train/scheduler.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <cmath>

#include <fstream>
#include <nlohmann/json.hpp>

#include "samdeblur/core/error.h"
#include "samdeblur/io/npy.h"
#include "support/test_support.h"

namespace st = samdeblur::train;
using nlohmann::json;

namespace {

constexpr const char* kRegenerate =
    "regenerate with: /usr/bin/python3 scripts/make_train_fixtures.py /tmp/ref/sam-deblur";

const json& meta() {
  static const json j = samdeblur::test::check_fixture_version("train/meta.json", 1, kRegenerate);
  return j;
}

st::SchedulerOptions options_from(const json& c) {
  st::SchedulerOptions o;
  o.type = c.at("type").get<std::string>();
  const json& a = c.at("args");
  if (a.contains("T_max")) o.T_max = a["T_max"].get<int64_t>();
  if (a.contains("eta_min")) o.eta_min = a["eta_min"].get<double>();
  if (a.contains("milestones")) o.milestones = a["milestones"].get<std::vector<int64_t>>();
  if (a.contains("gamma")) o.gamma = a["gamma"].get<double>();
  if (a.contains("restarts")) o.restarts = a["restarts"].get<std::vector<int64_t>>();
  if (a.contains("restart_weights"))
    o.restart_weights = a["restart_weights"].get<std::vector<double>>();
  if (a.contains("periods")) o.periods = a["periods"].get<std::vector<int64_t>>();
  if (!c.at("total_iter").is_null()) o.total_iter = c["total_iter"].get<int64_t>();
  return o;
}

}  // namespace

TEST(LrSchedule, MatchesOfficialLoopForEveryCase) {
  const auto lrs = samdeblur::test::load_npz_fixture("train/lr.npz", kRegenerate);
  ASSERT_GE(meta().at("lr_cases").size(), 6u);
  for (const auto& [name, c] : meta().at("lr_cases").items()) {
    const st::LrSchedule schedule(options_from(c), c.at("base_lr").get<double>(),
                                  c.at("warmup_iter").get<int64_t>());
    const auto want = lrs.at(name).to(torch::kDouble).contiguous();
    const double* w = want.data_ptr<double>();
    for (int64_t i = 1; i <= want.size(0); ++i) {
      // Same double arithmetic in the same order: equal up to libm's last bit.
      ASSERT_NEAR(schedule.lr(i), w[i - 1], 1e-15 * std::abs(w[i - 1]) + 1e-20)
          << name << " at iteration " << i;
    }
  }
}

TEST(LrSchedule, StatelessRandomAccessEqualsSequential) {
  st::SchedulerOptions o;
  o.T_max = 40;
  o.eta_min = 1e-7;
  const st::LrSchedule seq(o, 1e-3, 10), random_access(o, 1e-3, 10);
  std::vector<double> all;
  for (int64_t i = 1; i <= 90; ++i) all.push_back(seq.lr(i));
  for (int64_t i : {57, 3, 90, 10, 11, 1, 41, 42, 40})
    EXPECT_EQ(random_access.lr(i), all[i - 1]) << i;
  // Warm-up: base / warmup * iter, exactly.
  EXPECT_EQ(all[0], 1e-3 / 10 * 1);
  EXPECT_EQ(all[8], 1e-3 / 10 * 9);
  EXPECT_THROW(seq.lr(0), samdeblur::Error);
}

TEST(LrSchedule, InvalidOptionsNameTheKey) {
  st::SchedulerOptions o;
  o.type = "CosineLR";
  const std::string err = samdeblur::test::error_of<samdeblur::ConfigError>([&] { o.validate(); });
  EXPECT_NE(err.find("train.scheduler.type"), std::string::npos) << err;
  EXPECT_NE(err.find("TrueCosineAnnealingLR"), std::string::npos) << err;
  o.type = "TrueCosineAnnealingLR";
  o.T_max = 0;
  EXPECT_THROW(o.validate(), samdeblur::ConfigError);
  o.type = "CosineAnnealingRestartLR";
  o.periods = {10};
  o.restart_weights = {1.0};
  const st::LrSchedule s(o, 1e-3);
  EXPECT_NO_THROW(s.lr(11));
  EXPECT_THROW(s.lr(12), samdeblur::Error);  // past the last period (official: TypeError)
}

namespace {

void check_optimizer(const std::string& name, const st::OptimizerOptions& options) {
  const auto f = samdeblur::test::load_npz_fixture("train/optim.npz", kRegenerate);
  std::vector<torch::Tensor> params;
  for (int i = 0; i < 3; ++i)
    params.push_back(f.at("init_" + std::to_string(i)).clone().requires_grad_(true));
  auto opt = st::make_optimizer(params, options);
  for (int k = 0; k < 4; ++k) {
    opt->zero_grad();
    for (int i = 0; i < 3; ++i)
      params[i].mutable_grad() = f.at(fmt::format("grad_{}_{}", k, i)).clone();
    const auto norm = st::clip_grad_norm(params, 0.01);
    const float want_norm = f.at(fmt::format("{}_norm_{}", name, k)).item<float>();
    EXPECT_NEAR(norm.item<float>(), want_norm, 1e-6 * want_norm) << name << " step " << k;
    for (int i = 0; i < 3; ++i) {
      const auto& want = f.at(fmt::format("{}_clipped_{}_{}", name, k, i));
      EXPECT_TRUE(torch::allclose(params[i].grad(), want, 1e-6, 1e-12))
          << name << " clipped grad " << i << " step " << k << " worst "
          << (params[i].grad() - want).abs().max().item<double>();
    }
    opt->step();
    for (int i = 0; i < 3; ++i) {
      const auto& want = f.at(fmt::format("{}_param_{}_{}", name, k, i));
      EXPECT_TRUE(torch::allclose(params[i].detach(), want, 0, 1e-7))
          << name << " param " << i << " step " << k << " worst "
          << (params[i].detach() - want).abs().max().item<double>();
    }
  }
}

}  // namespace

TEST(Optimizer, AdamWStepsMatchTorch) {
  st::OptimizerOptions o;
  o.type = "AdamW";
  o.lr = 1e-3;
  o.weight_decay = 1e-3;
  o.betas = {0.9, 0.9};
  check_optimizer("adamw", o);
}

TEST(Optimizer, AdamStepsMatchTorch) {
  st::OptimizerOptions o;
  o.type = "Adam";
  o.lr = 2e-3;
  o.weight_decay = 0.0;
  o.betas = {0.9, 0.99};
  check_optimizer("adam", o);
}

TEST(Optimizer, SetLrAndDefaults) {
  std::vector<torch::Tensor> params = {torch::zeros({3}, torch::requires_grad())};
  auto opt = st::make_optimizer(params, st::OptimizerOptions{});
  EXPECT_DOUBLE_EQ(st::get_lr(*opt), 1e-3);
  const auto& adamw =
      static_cast<const torch::optim::AdamWOptions&>(opt->param_groups().front().options());
  EXPECT_DOUBLE_EQ(adamw.weight_decay(), 1e-2);  // torch.optim.AdamW default
  st::set_lr(*opt, 2.5e-4);
  EXPECT_DOUBLE_EQ(st::get_lr(*opt), 2.5e-4);
  st::OptimizerOptions bad;
  bad.type = "Lion";
  EXPECT_THROW(st::make_optimizer(params, bad), samdeblur::ConfigError);
}

TEST(ClipGradNorm, SmallGradientsUntouchedAndMissingGradsSkipped) {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({2}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3e-4f, 4e-4f});  // norm 5e-4 < 0.01: coef clamps to 1
  const auto n = st::clip_grad_norm({a, b}, 0.01);
  EXPECT_NEAR(n.item<double>(), 5e-4, 1e-9);
  EXPECT_TRUE(torch::equal(a.grad(), torch::tensor({3e-4f, 4e-4f})));
  EXPECT_FALSE(b.grad().defined());
  EXPECT_EQ(st::clip_grad_norm({b}, 0.01).item<double>(), 0.0);
}
