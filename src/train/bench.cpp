// sdb-bench timings (see include/samdeblur/train/bench.h).
#include "samdeblur/train/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "samdeblur/models/map_unit.h"
#include "samdeblur/train/loss.h"
#include "samdeblur/train/scheduler.h"

namespace samdeblur::train {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

// Median wall time (ms) of `repeat` runs after one warm-up run.
double time_ms(const std::function<void()>& fn, int repeat, const torch::Device& device) {
  fn();
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    fn();
    if (device.is_cuda()) torch::cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A partition of (h, w) into about `m` rectangular cells, labels 0..m-1.
torch::Tensor grid_labels(int64_t h, int64_t w, int64_t m) {
  const int64_t rows =
      std::max<int64_t>(1, static_cast<int64_t>(std::sqrt(static_cast<double>(m) * h / w)));
  const int64_t cols = (m + rows - 1) / rows;
  auto y = (torch::arange(h) * rows / h).unsqueeze(1);
  auto x = (torch::arange(w) * cols / w).unsqueeze(0);
  return (y * cols + x).clamp_max(m - 1).to(torch::kLong);
}

// A random partition of (h, w) into at most `m` irregular cells (Voronoi cells
// of m random seeds), labels 0..m-1: stands in for a grouped SAM mask file.
torch::Tensor random_partition(int64_t h, int64_t w, int64_t m) {
  const auto sy = torch::randint(h, {m}, torch::kLong), sx = torch::randint(w, {m}, torch::kLong);
  const auto dy = torch::arange(h).view({h, 1, 1}) - sy.view({1, 1, m});
  const auto dx = torch::arange(w).view({1, w, 1}) - sx.view({1, 1, m});
  return (dy * dy + dx * dx).argmin(2);  // (h, w) int64
}

models::NetworkOptions nafnet_w32(const std::string& type) {
  models::NetworkOptions o;  // options/train/GoPro/{NAFNet,SegNAFNet}.yml
  o.type = type;
  o.width = 32;
  o.enc_blk_nums = {1, 1, 1, 28};
  o.middle_blk_num = 1;
  o.dec_blk_nums = {1, 1, 1, 1};
  o.seg_channel = 2;
  o.mask_dropout = 0.5;
  return o;
}

// Median seconds of one training iteration as the official
// ImageRestorationModel.optimize_parameters does it (the same steps as
// train::Trainer): zero_grad; pred = net(lq[, masks]); PSNRLoss(pred, gt)
// + 0 * sum(params); backward; clip_grad_norm_(params, 0.01); AdamW step
// (lr 1e-3, weight_decay 1e-3, betas (0.9, 0.9)). The batch lives in memory, so
// no data loading is timed. `warmup` untimed iterations come first.
double train_seconds(const std::string& type, int64_t batch, int64_t size, int64_t num_masks,
                     int warmup, int repeat, const torch::Device& device) {
  auto net = models::build_network(nafnet_w32(type));
  net->to(device);
  net->train();  // SegNAFNet: mask dropout active
  std::vector<torch::Tensor> params;
  for (const auto& p : net->parameters())
    if (p.requires_grad()) params.push_back(p);
  OptimizerOptions oo;
  oo.type = "AdamW";
  oo.lr = 1e-3;
  oo.weight_decay = 1e-3;
  oo.betas = {0.9, 0.9};
  auto optimizer = make_optimizer(params, oo);

  const auto opts = torch::TensorOptions().device(device);
  const auto lq = torch::rand({batch, 3, size, size}, opts);  // (B, 3, S, S)
  const auto gt = torch::rand({batch, 3, size, size}, opts);
  std::vector<models::SegMasks> masks;
  if (net->needs_masks())
    for (int64_t b = 0; b < batch; ++b)
      masks.push_back(models::SegMasks::from_labels(random_partition(size, size, num_masks),
                                                    num_masks, 1.0 / 255.0)
                          .to(device));
  auto iteration = [&] {
    optimizer->zero_grad();
    const auto pred = net->forward(lq, masks);
    const auto loss = psnr_loss(pred, gt);
    auto zero_term = torch::zeros({}, loss.options());
    for (const auto& p : params) zero_term = zero_term + p.sum();
    (loss + 0.0 * zero_term).backward();
    clip_grad_norm(params, 0.01);
    optimizer->step();
    return loss.item<double>();  // the official logs l_pix.item() (reduce_loss_dict)
  };
  for (int i = 0; i < warmup; ++i) iteration();
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    iteration();
    if (device.is_cuda()) torch::cuda::synchronize();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

void bench_map_unit(const torch::Device& device, int repeat, const BenchReport& report) {
  c10::InferenceMode guard;
  struct Case {
    int64_t h, w, m;
  };
  for (const Case c : {Case{256, 256, 64}, Case{720, 1280, 300}}) {
    const int64_t channels = 2;  // seg_channel of the official SegNAFNet configs
    const auto feats = torch::randn({channels, c.h, c.w}, torch::TensorOptions().device(device));
    const auto labels = grid_labels(c.h, c.w, c.m).to(device);
    const double value = 1.0 / 255.0;
    report(
        fmt::format("MAP label-map {}x{} M={} C={}", c.w, c.h, c.m, channels),
        time_ms([&] { models::mask_average_labels(feats, labels, c.m, value); }, repeat, device));
    const auto dense = torch::nn::functional::one_hot(labels, c.m)
                           .permute({2, 0, 1})
                           .unsqueeze(1)
                           .to(torch::kFloat);
    report(fmt::format("MAP dense     {}x{} M={} C={}", c.w, c.h, c.m, channels),
           time_ms([&] { models::mask_average_dense(feats, dense, value); },
                   std::max(1, repeat / 2), device));
  }
}

void bench_nafnet_forward(const torch::Device& device, int repeat, const BenchReport& report) {
  c10::InferenceMode guard;
  auto net = models::build_network(nafnet_w32("NAFNet"));
  net->to(device);
  net->eval();
  for (auto [h, w] : {std::pair<int64_t, int64_t>{256, 256}, {720, 1280}}) {
    const auto x = torch::rand({1, 3, h, w}, torch::TensorOptions().device(device));
    report(fmt::format("NAFNet-w32 forward {}x{}", w, h),
           time_ms([&] { net->forward(x); }, h > 256 ? std::max(1, repeat / 2) : repeat, device));
  }
}

}  // namespace samdeblur::train
