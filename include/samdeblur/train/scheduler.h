#pragma once
// Learning-rate schedules, optimizer construction and gradient clipping of the
// official training loop (SAM-Deblur basicsr/models/base_model.py
// setup_schedulers / update_learning_rate, basicsr/models/lr_scheduler.py,
// image_restoration_model.py setup_optimizers / optimize_parameters).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace samdeblur::train {

// `train.scheduler`; field names are the official keys.
//  TrueCosineAnnealingLR     torch.optim.lr_scheduler.CosineAnnealingLR(T_max, eta_min)
//  MultiStepLR | MultiStepRestartLR  (milestones, gamma, restarts, restart_weights)
//  CosineAnnealingRestartLR  (periods, restart_weights, eta_min)
//  LinearLR | VibrateLR      (train.total_iter, copied into total_iter)
struct SchedulerOptions {
  std::string type = "TrueCosineAnnealingLR";
  int64_t T_max = 0;
  double eta_min = 0.0;
  std::vector<int64_t> milestones;
  double gamma = 0.1;
  std::vector<int64_t> restarts = {0};
  std::vector<double> restart_weights = {1.0};
  std::vector<int64_t> periods;
  int64_t total_iter = 0;  // from `train.total_iter`, LinearLR / VibrateLR only
  // Throws ConfigError naming `train.scheduler.<key>` for invalid values or an
  // unknown type (listing the valid ones).
  void validate() const;
};

// The learning rate that the official model has in its param groups when
// optimize_parameters(current_iter) runs, i.e. after
// update_learning_rate(current_iter, warmup_iter):
//   * the scheduler is constructed with the optimizer (initial step, epoch 0),
//   * for current_iter > 1 it steps once (scheduler epoch = current_iter - 1),
//   * for current_iter < warmup_iter the group lr is overwritten with
//     base_lr / warmup_iter * current_iter (warmup_iter <= 0: no warm-up).
// The chainable torch schedulers (CosineAnnealingLR, MultiStepRestartLR) update
// the *current* group lr recursively, so the warm-up value feeds into the
// schedule after warm-up (the official lr right after warm-up is not the
// closed form; e.g. warm-up 10, T_max 40, lr 1e-3: iter 10 -> 8.758e-4). This
// class reproduces that recursion with the same double arithmetic (bit-equal to
// the Python loop on the same libm).
//
// A pure function of current_iter (resume needs no state); internally the
// recursion is cached so consecutive calls cost O(1). Thread-safe.
class LrSchedule {
 public:
  LrSchedule(SchedulerOptions options, double base_lr, int64_t warmup_iter = -1);
  // current_iter >= 1 (1-based, as basicsr/train.py). Throws Error past the
  // last CosineAnnealingRestartLR period (where the official code crashes).
  double lr(int64_t current_iter) const;
  const SchedulerOptions& options() const { return options_; }

 private:
  double step(int64_t epoch, double group_lr) const;  // scheduler.step() to `epoch`
  SchedulerOptions options_;
  double base_lr_;
  int64_t warmup_iter_;
  mutable std::mutex mutex_;
  mutable int64_t cached_iter_ = 0;       // 0: nothing cached
  mutable double cached_group_lr_ = 0.0;  // scheduler's lr before the warm-up override
};

// `train.optim_g`; keys as the torch.optim constructor arguments the official
// code forwards (**optim_g). weight_decay unset = torch's default for the type
// (AdamW 1e-2, Adam / SGD 0).
struct OptimizerOptions {
  std::string type = "AdamW";  // AdamW | Adam | SGD
  double lr = 1e-3;
  std::optional<double> weight_decay;
  std::tuple<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  bool amsgrad = false;
  double momentum = 0.0;   // SGD
  double dampening = 0.0;  // SGD
  bool nesterov = false;   // SGD
  void validate() const;   // ConfigError naming train.optim_g.<key>
};

// One param group holding `params`, as the official setup_optimizers. LibTorch's
// AdamW / Adam / SGD implement the same update as PyTorch 1.13's single-tensor
// (CPU) path; tests/train/scheduler_test.cpp checks AdamW and Adam against
// torch.optim steps.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const OptimizerOptions& options);

// Sets / reads the lr of every param group (BaseModel._set_lr).
void set_lr(torch::optim::Optimizer& optimizer, double lr);
double get_lr(const torch::optim::Optimizer& optimizer);

// torch.nn.utils.clip_grad_norm_ (1.13): total = norm of the per-parameter
// `norm_type` norms of the defined gradients; every gradient is multiplied in
// place by min(1, max_norm / (total + 1e-6)) (computed as torch does, as the
// reciprocal times max_norm). Returns the total norm (0-dim tensor on the
// gradients' device; no host sync). The official trainer calls it with
// max_norm 0.01 when `train.use_grad_clip` (default true).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm,
                             double norm_type = 2.0);

}  // namespace samdeblur::train
