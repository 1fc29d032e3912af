// Learning-rate schedules, optimizers, gradient clipping; mirrors
// basicsr/models/base_model.py, basicsr/models/lr_scheduler.py and
// torch/optim/lr_scheduler.py (CosineAnnealingLR, torch 1.13) of the reference.
#include "samdeblur/train/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "samdeblur/core/error.h"

namespace samdeblur::train {
namespace {

constexpr double kPi = 3.141592653589793;  // == math.pi

const std::vector<std::string>& scheduler_types() {
  static const std::vector<std::string> types = {
      "TrueCosineAnnealingLR",    "MultiStepLR", "MultiStepRestartLR",
      "CosineAnnealingRestartLR", "LinearLR",    "VibrateLR"};
  return types;
}

// Python's a % b for b > 0 (non-negative result).
int64_t py_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// Python's a // b for b > 0.
int64_t py_floordiv(int64_t a, int64_t b) { return (a - py_mod(a, b)) / b; }

ConfigError scheduler_error(const std::string& key, const std::string& what) {
  return ConfigError(fmt::format("train.scheduler.{}: {}", key, what));
}

}  // namespace

void SchedulerOptions::validate() const {
  const auto& types = scheduler_types();
  if (std::find(types.begin(), types.end(), type) == types.end())
    throw scheduler_error(
        "type", fmt::format("unknown scheduler '{}'; valid: {}", type, fmt::join(types, ", ")));
  if (type == "TrueCosineAnnealingLR" && T_max <= 0)
    throw scheduler_error("T_max", fmt::format("must be > 0, got {}", T_max));
  if (type == "MultiStepLR" || type == "MultiStepRestartLR") {
    if (restarts.size() != restart_weights.size())
      throw scheduler_error("restart_weights",
                            fmt::format("{} restarts but {} restart_weights", restarts.size(),
                                        restart_weights.size()));
  }
  if (type == "CosineAnnealingRestartLR") {
    if (periods.empty()) throw scheduler_error("periods", "must not be empty");
    if (periods.size() != restart_weights.size())
      throw scheduler_error("restart_weights", fmt::format("{} periods but {} restart_weights",
                                                           periods.size(), restart_weights.size()));
    for (int64_t p : periods)
      if (p <= 0) throw scheduler_error("periods", fmt::format("must be > 0, got {}", p));
  }
  if (type == "LinearLR" && total_iter <= 0)
    throw ConfigError(fmt::format("train.total_iter: LinearLR needs > 0, got {}", total_iter));
  if (type == "VibrateLR" && total_iter < 160)
    throw ConfigError(
        fmt::format("train.total_iter: VibrateLR needs >= 160 (period total_iter // 80 must "
                    "have a half period >= 1), got {}",
                    total_iter));
}

LrSchedule::LrSchedule(SchedulerOptions options, double base_lr, int64_t warmup_iter)
    : options_(std::move(options)), base_lr_(base_lr), warmup_iter_(warmup_iter) {
  options_.validate();
}

double LrSchedule::step(int64_t e, double g) const {
  const auto& o = options_;
  const double base = base_lr_;
  if (o.type == "TrueCosineAnnealingLR") {
    // torch 1.13 CosineAnnealingLR.get_lr (chainable form; _step_count > 1).
    const double T = static_cast<double>(o.T_max), eta = o.eta_min;
    if (e == 0) return g;
    if (py_mod(e - 1 - o.T_max, 2 * o.T_max) == 0)
      return g + (base - eta) * (1 - std::cos(kPi / T)) / 2;
    return (1 + std::cos(kPi * static_cast<double>(e) / T)) /
               (1 + std::cos(kPi * static_cast<double>(e - 1) / T)) * (g - eta) +
           eta;
  }
  if (o.type == "MultiStepLR" || o.type == "MultiStepRestartLR") {
    const auto r = std::find(o.restarts.begin(), o.restarts.end(), e);
    if (r != o.restarts.end()) return base * o.restart_weights[r - o.restarts.begin()];
    const auto count = std::count(o.milestones.begin(), o.milestones.end(), e);
    if (count == 0) return g;
    return g * std::pow(o.gamma, static_cast<double>(count));
  }
  if (o.type == "CosineAnnealingRestartLR") {
    int64_t cumulative = 0, nearest = 0;
    for (size_t i = 0; i < o.periods.size(); ++i) {
      cumulative += o.periods[i];
      if (e <= cumulative) {
        const double pos = static_cast<double>(e - nearest) / static_cast<double>(o.periods[i]);
        return o.eta_min +
               o.restart_weights[i] * 0.5 * (base - o.eta_min) * (1 + std::cos(kPi * pos));
      }
      nearest = cumulative;
    }
    throw Error(fmt::format(
        "CosineAnnealingRestartLR: iteration {} is past the last period (sum of periods {}); "
        "the official scheduler fails here too",
        e + 1, cumulative));
  }
  const double process = static_cast<double>(e) / static_cast<double>(o.total_iter);
  if (o.type == "LinearLR") return (1 - process) * base;
  // VibrateLR
  double f = 0.1;
  if (process < 3.0 / 8.0)
    f = 1 - process * 8 / 3;
  else if (process < 5.0 / 8.0)
    f = 0.2;
  const int64_t T = py_floordiv(o.total_iter, 80), Th = py_floordiv(T, 2);
  const int64_t t = py_mod(e, T);
  double f2 = static_cast<double>(t) / static_cast<double>(Th);
  if (t >= Th) f2 = 2 - f2;
  double weight = f * f2;
  if (e < Th) weight = std::max(0.1, weight);
  return weight * base;
}

double LrSchedule::lr(int64_t current_iter) const {
  if (current_iter < 1)
    throw Error(fmt::format("LrSchedule::lr: current_iter must be >= 1, got {}", current_iter));
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t it = cached_iter_;
  double g = cached_group_lr_;
  if (it == 0 || it > current_iter) {
    it = 1;
    g = step(0, base_lr_);  // _LRScheduler.__init__: initial step at epoch 0
  }
  // Group lr as left by update_learning_rate(it): warm-up overrides it.
  auto with_warmup = [&](int64_t i, double group_lr) {
    return i < warmup_iter_ ? base_lr_ / static_cast<double>(warmup_iter_) * static_cast<double>(i)
                            : group_lr;
  };
  double group = with_warmup(it, g);
  while (it < current_iter) {
    ++it;
    g = step(it - 1, group);  // scheduler.step(): epoch = it - 1, from the current group lr
    group = with_warmup(it, g);
  }
  cached_iter_ = it;
  cached_group_lr_ = g;
  return group;
}

void OptimizerOptions::validate() const {
  if (type != "AdamW" && type != "Adam" && type != "SGD")
    throw ConfigError(
        fmt::format("train.optim_g.type: unknown optimizer '{}'; valid: AdamW, Adam, SGD", type));
  if (!(lr >= 0)) throw ConfigError(fmt::format("train.optim_g.lr: must be >= 0, got {}", lr));
  if (weight_decay && !(*weight_decay >= 0))
    throw ConfigError(
        fmt::format("train.optim_g.weight_decay: must be >= 0, got {}", *weight_decay));
  const auto [b1, b2] = betas;
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    throw ConfigError(
        fmt::format("train.optim_g.betas: each must lie in [0, 1), got [{}, {}]", b1, b2));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const OptimizerOptions& o) {
  o.validate();
  if (o.type == "AdamW") {
    auto opt = torch::optim::AdamWOptions(o.lr).betas(o.betas).eps(o.eps).amsgrad(o.amsgrad);
    opt.weight_decay(o.weight_decay.value_or(1e-2));
    return std::make_unique<torch::optim::AdamW>(params, opt);
  }
  if (o.type == "Adam") {
    auto opt = torch::optim::AdamOptions(o.lr).betas(o.betas).eps(o.eps).amsgrad(o.amsgrad);
    opt.weight_decay(o.weight_decay.value_or(0.0));
    return std::make_unique<torch::optim::Adam>(params, opt);
  }
  auto opt = torch::optim::SGDOptions(o.lr)
                 .momentum(o.momentum)
                 .dampening(o.dampening)
                 .nesterov(o.nesterov);
  opt.weight_decay(o.weight_decay.value_or(0.0));
  return std::make_unique<torch::optim::SGD>(params, opt);
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double get_lr(const torch::optim::Optimizer& optimizer) {
  const auto& groups = optimizer.param_groups();
  if (groups.empty()) throw Error("get_lr: optimizer has no param group");
  return groups.front().options().get_lr();
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm,
                             double norm_type) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad().detach());
  if (grads.empty()) return torch::zeros({});
  const auto device = grads.front().device();
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  torch::Tensor total;
  if (std::isinf(norm_type)) {
    for (const auto& g : grads) norms.push_back(g.abs().max().to(device));
    total = norms.size() == 1 ? norms.front() : torch::stack(norms).max();
  } else {
    auto all_dims = [](const torch::Tensor& t) {
      std::vector<int64_t> d(t.dim());
      for (int64_t i = 0; i < t.dim(); ++i) d[i] = i;
      return d;
    };
    for (const auto& g : grads) norms.push_back(torch::norm(g, norm_type, all_dims(g)).to(device));
    const auto stacked = torch::stack(norms);
    total = torch::norm(stacked, norm_type, all_dims(stacked));
  }
  // Python's `max_norm / tensor` is tensor.reciprocal() * max_norm.
  const auto coef = torch::clamp((total + 1e-6).reciprocal() * max_norm, c10::nullopt, 1.0);
  torch::NoGradGuard no_grad;
  for (auto& g : grads) g.mul_(coef.to(g.device()));
  return total;
}

}  // namespace samdeblur::train
