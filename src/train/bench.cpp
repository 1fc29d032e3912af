// sdb-bench timings (see include/samdeblur/train/bench.h).
#include "samdeblur/train/bench.h"

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "samdeblur/core/profile.h"
#include "samdeblur/models/map_unit.h"
#include "samdeblur/models/nafnet.h"
#include "samdeblur/train/loss.h"
#include "samdeblur/train/scheduler.h"

namespace samdeblur::train {

namespace {

using Clock = std::chrono::steady_clock;

double minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_minflt);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Collects the per-run times and faults of one case.
struct Samples {
  std::vector<double> ms;
  double faults = 0;

  template <class F>
  void run(F&& fn, const torch::Device& device) {
    const double f0 = minor_faults();
    const auto t0 = Clock::now();
    fn();
    if (device.is_cuda()) torch::cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    faults += minor_faults() - f0;
  }
  Timing timing() const {
    Timing t;
    t.runs = static_cast<int>(ms.size());
    if (ms.empty()) return t;
    t.median_ms = median(ms);
    t.min_ms = *std::min_element(ms.begin(), ms.end());
    t.minor_faults = faults / static_cast<double>(ms.size());
    return t;
  }
};

}  // namespace

Timing time_runs(const std::function<void()>& fn, int warmup, int repeat,
                 const torch::Device& device) {
  for (int i = 0; i < warmup; ++i) fn();
  if (device.is_cuda()) torch::cuda::synchronize();
  Samples s;
  for (int i = 0; i < repeat; ++i) s.run(fn, device);
  return s.timing();
}

double time_ms(const std::function<void()>& fn, int repeat, const torch::Device& device) {
  return time_runs(fn, 1, repeat, device).median_ms;
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

namespace {

std::string execution_label(const models::ExecutionOptions& e) {
  if (e.is_default()) return "";
  return fmt::format(" [{} {}{}]", e.precision(), e.memory_format(), e.fused ? " fused" : "");
}

// One network, optimizer and batch of bench_train; iteration() is one step.
struct TrainCase {
  models::DeblurNet net;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> optimizer;

  TrainCase(const std::string& type, const models::ExecutionOptions& execution,
            const torch::Device& device) {
    torch::manual_seed(0);  // identical weights for every execution
    net = models::build_network(nafnet_w32(type));
    net->to(device);
    net->train();  // SegNAFNet: mask dropout active
    net->set_execution(execution);
    models::set_fused_backward(*net, execution.fused);
    for (const auto& p : net->parameters())
      if (p.requires_grad()) params.push_back(p);
    OptimizerOptions oo;
    oo.type = "AdamW";
    oo.lr = 1e-3;
    oo.weight_decay = 1e-3;
    oo.betas = {0.9, 0.9};
    optimizer = make_optimizer(params, oo);
  }

  double iteration(const torch::Tensor& lq, const torch::Tensor& gt,
                   const std::vector<models::SegMasks>& masks) {
    optimizer->zero_grad();
    const auto pred = net->forward(lq, masks);
    const auto loss = psnr_loss(pred, gt);
    auto zero_term = torch::zeros({}, loss.options());
    for (const auto& p : params) zero_term = zero_term + p.sum();
    (loss + 0.0 * zero_term).backward();
    clip_grad_norm(params, 0.01);
    optimizer->step();
    return loss.item<double>();  // the official logs l_pix.item() (reduce_loss_dict)
  }
};

}  // namespace

void bench_train(const std::string& type, const TrainBenchOptions& options,
                 const torch::Device& device, const BenchReport& report) {
  std::vector<models::ExecutionOptions> executions;
  if (options.ab) executions.emplace_back();
  executions.push_back(options.execution);
  std::vector<std::unique_ptr<TrainCase>> cases;
  for (const auto& e : executions) {
    models::check_execution_supported(e, device);
    cases.push_back(std::make_unique<TrainCase>(type, e, device));
  }
  const int64_t b = options.batch, size = options.size, m = options.num_masks;
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().device(device);
  const auto lq = torch::rand({b, 3, size, size}, opts);  // (B, 3, S, S)
  const auto gt = torch::rand({b, 3, size, size}, opts);
  std::vector<models::SegMasks> masks;
  if (cases.front()->net->needs_masks())
    for (int64_t i = 0; i < b; ++i)
      masks.push_back(models::SegMasks::from_labels(random_partition(size, size, m), m, 1.0 / 255.0)
                          .to(device));
  std::vector<Samples> first(cases.size()), samples(cases.size());
  for (int i = 0; i < options.warmup + options.repeat; ++i) {
    for (size_t k = 0; k < cases.size(); ++k)  // interleaved: A, B, A, B, ...
      (i < options.warmup ? first : samples)[k].run([&] { cases[k]->iteration(lq, gt, masks); },
                                                    device);
  }
  const double gflop =
      3.0 * static_cast<double>(b) * nafnet_conv_gflop(nafnet_w32(type), size, size);
  for (size_t k = 0; k < cases.size(); ++k) {
    Timing t = samples[k].timing();
    if (!first[k].ms.empty()) {
      t.first_ms = first[k].ms.front();
      t.first_faults = first[k].faults / static_cast<double>(first[k].ms.size());
    }
    report(
        {fmt::format("{}-w32 train B{} {}x{}{}{}", type, b, size, size,
                     masks.empty() ? "" : fmt::format(" M={}", m), execution_label(executions[k])),
         t, gflop, torch::kFloat});
  }
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
    report({fmt::format("MAP label-map {}x{} M={} C={}", c.w, c.h, c.m, channels),
            time_runs([&] { models::mask_average_labels(feats, labels, c.m, value); }, 1, repeat,
                      device)});
    const auto dense = torch::nn::functional::one_hot(labels, c.m)
                           .permute({2, 0, 1})
                           .unsqueeze(1)
                           .to(torch::kFloat);
    report({fmt::format("MAP dense     {}x{} M={} C={}", c.w, c.h, c.m, channels),
            time_runs([&] { models::mask_average_dense(feats, dense, value); }, 1,
                      std::max(1, repeat / 2), device)});
  }
}

double nafnet_conv_gflop(const models::NetworkOptions& o, int64_t h, int64_t w) {
  const int64_t padder = int64_t{1} << o.enc_blk_nums.size();
  h = (h + padder - 1) / padder * padder;
  w = (w + padder - 1) / padder * padder;
  // multiply-adds of a conv with `in` -> `out` channels, k x k, on `pixels` outputs
  auto conv = [](double in, double out, double k, double pixels, double groups = 1) {
    return in / groups * out * k * k * pixels;
  };
  // NAFBlock of c channels (dw_expand = ffn_expand = 2) on `pixels` pixels.
  auto block = [&](double c, double pixels) {
    return conv(c, 2 * c, 1, pixels) + conv(2 * c, 2 * c, 3, pixels, 2 * c) +
           conv(c, c, 1, pixels) + conv(c, c, 1, 1) + conv(c, 2 * c, 1, pixels) +
           conv(c, c, 1, pixels);
  };
  const double in =
      static_cast<double>(o.img_channel + (o.mask ? 1 : 0) + (o.is_seg() ? o.seg_channel : 0));
  double c = static_cast<double>(o.width), px = static_cast<double>(h * w), macs = 0;
  macs += conv(in, c, 3, px) + conv(c, static_cast<double>(o.img_channel), 3, px);  // intro, ending
  for (const int64_t n : o.enc_blk_nums) {
    macs += static_cast<double>(n) * block(c, px);
    macs += conv(c, 2 * c, 2, px / 4);  // down, stride 2
    c *= 2;
    px /= 4;
  }
  macs += static_cast<double>(o.middle_blk_num) * block(c, px);
  for (const int64_t n : o.dec_blk_nums) {
    macs += conv(c, 2 * c, 1, px);  // up: 1x1 to 2c, then pixel shuffle to c / 2
    c /= 2;
    px *= 4;
    macs += static_cast<double>(n) * block(c, px);
  }
  return 2.0 * macs / 1e9;
}

namespace {

// One profiled forward of each execution at each size, reported per operator
// (Timing: median_ms = the operator's total ms in that forward, runs = calls).
void profile_nafnet_forward(const std::vector<models::DeblurNet>& nets,
                            const std::vector<models::ExecutionOptions>& executions,
                            const torch::Tensor& x, const BenchReport& report) {
  for (size_t k = 0; k < nets.size(); ++k) {
    const auto ops = profile_top_level([&] { nets[k]->forward(x); });
    for (const auto& [name, op] : sorted_profile(ops)) {
      Timing t;
      t.median_ms = t.min_ms = op.first;
      t.runs = op.second;
      report({fmt::format("  profile {}x{}{}: {} ({} calls)", x.size(3), x.size(2),
                          execution_label(executions[k]), name, op.second),
              t});
    }
  }
}

}  // namespace

void bench_nafnet_forward(const torch::Device& device, const ForwardBenchOptions& options,
                          const BenchReport& report) {
  std::vector<models::ExecutionOptions> executions;
  if (options.ab) executions.emplace_back();
  executions.push_back(options.execution);
  std::vector<models::DeblurNet> nets;
  for (const auto& e : executions) {
    models::check_execution_supported(e, device);
    torch::manual_seed(0);  // identical weights for every execution
    auto net = models::build_network(nafnet_w32("NAFNet"));
    net->to(device);
    net->eval();
    net->set_execution(e);
    nets.push_back(net);
  }
  c10::InferenceMode guard;
  for (const auto& [h, w] : options.sizes) {
    const auto x = torch::rand({1, 3, h, w}, torch::TensorOptions().device(device));
    const int repeat = h * w > 512 * 512 ? std::max(1, options.repeat / 2) : options.repeat;
    std::vector<Samples> first(nets.size()), samples(nets.size());
    for (int i = 0; i < options.warmup + repeat; ++i) {
      for (size_t k = 0; k < nets.size(); ++k) {  // interleaved: A, B, A, B, ...
        (i < options.warmup ? first : samples)[k].run([&] { nets[k]->forward(x); }, device);
      }
    }
    for (size_t k = 0; k < nets.size(); ++k) {
      Timing t = samples[k].timing();
      if (!first[k].ms.empty()) {
        t.first_ms = first[k].ms.front();
        t.first_faults = first[k].faults / static_cast<double>(first[k].ms.size());
      }
      report({fmt::format("NAFNet-w32 forward {}x{}{}", w, h, execution_label(executions[k])), t,
              nafnet_conv_gflop(nafnet_w32("NAFNet"), h, w), executions[k].dtype});
    }
    if (options.profile) profile_nafnet_forward(nets, executions, x, report);
  }
}

void bench_matmul_peak(const torch::Device& device, int64_t n, int repeat,
                       const BenchReport& report) {
  c10::InferenceMode guard;
  std::vector<torch::ScalarType> dtypes = {torch::kFloat};
  if (device.is_cuda() || models::cpu_supports_bf16()) dtypes.push_back(torch::kBFloat16);
  const double gflop =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / 1e9;
  for (const auto dtype : dtypes) {
    const auto opts = torch::TensorOptions().device(device).dtype(dtype);
    const std::string tag = dtype == torch::kFloat ? "fp32" : "bf16";
    const auto a = torch::rand({n, n}, opts), b = torch::rand({n, n}, opts);
    report({fmt::format("matmul {}^3 {}", n, tag),
            time_runs([&] { torch::mm(a, b); }, 1, repeat, device), gflop, dtype});
    // The same n^3 multiply-adds as a channels-last 1x1 convolution of stride 2,
    // (1, n, 1, 2n) by (n, n, 1, 1) -> (1, n, 1, n): oneDNN on the CPU whatever
    // BLAS at::mm was linked with (the stride keeps ATen 1.13 from sending a
    // float32 1x1 convolution of batch < 16 on one thread to im2col + BLAS).
    const auto x = torch::rand({1, n, 1, 2 * n}, opts).contiguous(at::MemoryFormat::ChannelsLast);
    const auto w = torch::rand({n, n, 1, 1}, opts).contiguous(at::MemoryFormat::ChannelsLast);
    report({fmt::format("matmul {}^3 {} as 1x1 conv", n, tag),
            time_runs([&] { torch::conv2d(x, w, {}, /*stride=*/2); }, 1, repeat, device), gflop,
            dtype});
  }
}

}  // namespace samdeblur::train
