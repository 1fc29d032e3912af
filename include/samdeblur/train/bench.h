#pragma once
// Timings for sdb-bench: the MAP unit (label-map vs dense path), the NAFNet-w32
// forward pass (any execution: exact fp32 NCHW, channels-last + fused kernels,
// bf16; optionally interleaved A/B against the exact path in one process), the
// machine's matrix-product peak, and training iterations of NAFNet-w32 /
// SegNAFNet-w32 as the official ImageRestorationModel.optimize_parameters runs
// them. scripts/bench_official.py times the same cases, in the same order and
// with the same statistics, in Python. The library prints nothing: cases are
// handed to a callback.
#include <torch/torch.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "samdeblur/models/network.h"

namespace samdeblur::train {

// Statistics of `repeat` timed runs after `warmup` untimed ones.
struct Timing {
  double median_ms = 0;  // the mean of the two middle values for an even count
  double min_ms = 0;
  double minor_faults = 0;  // first-touch page faults per timed run (getrusage, whole process)
  int runs = 0;
  // The first (untimed) run of the case, where it was measured: the first-image stall.
  double first_ms = 0, first_faults = 0;
};

// Runs fn warmup + repeat times; CUDA is synchronised after each run.
Timing time_runs(const std::function<void()>& fn, int warmup, int repeat,
                 const torch::Device& device);
// Median wall time (ms) of `repeat` runs after one warm-up run.
double time_ms(const std::function<void()>& fn, int repeat, const torch::Device& device);

// A partition of (h, w) into about `m` rectangular cells, labels 0..m-1 (int64).
torch::Tensor grid_labels(int64_t h, int64_t w, int64_t m);
// A random partition of (h, w) into at most `m` irregular cells (Voronoi cells
// of m random seeds, torch's global generator), labels 0..m-1: stands in for a
// grouped SAM mask file. (h, w) int64.
torch::Tensor random_partition(int64_t h, int64_t w, int64_t m);

// NAFNet-w32 / SegNAFNet-w32 of options/train/GoPro/{NAFNet,SegNAFNet}.yml.
models::NetworkOptions nafnet_w32(const std::string& type);

// GFLOP (2 x multiply-adds) of the convolutions of one forward pass of the
// NAFNet-family U-Net of `options` on a (1, C, h, w) input (padded to the
// U-Net's multiple as the network does). Elementwise work (LayerNorm2d, gates,
// residuals, pooling) is not counted: it is < 2 % of the arithmetic.
double nafnet_conv_gflop(const models::NetworkOptions& options, int64_t h, int64_t w);

// One reported case: name, timing, and the work per run (0: not counted).
struct BenchResult {
  std::string name;
  Timing timing;
  double gflop = 0;
  torch::ScalarType dtype = torch::kFloat;  // which peak the GFLOP/s compare with
};
using BenchReport = std::function<void(const BenchResult&)>;

// MAP unit, label-map and dense paths, at 256x256 (M=64) and 1280x720 (M=300).
void bench_map_unit(const torch::Device& device, int repeat, const BenchReport& report);

struct ForwardBenchOptions {
  std::vector<std::array<int64_t, 2>> sizes = {{256, 256}, {720, 1280}};  // (H, W), in order
  int repeat = 5;  // timed runs at 256x256; half (at least 1) above 512x512
  int warmup = 1;  // untimed runs per size and execution
  models::ExecutionOptions execution;
  // Also time the exact path (default ExecutionOptions), interleaved run by run
  // with `execution` on identical weights, so that both see the same machine.
  bool ab = false;
  // After the timed runs of each size, one more forward of each execution under
  // LibTorch's profiler, reported per top-level operator ("  profile ..." cases:
  // median_ms = the operator's total ms in that forward, runs = its calls).
  bool profile = false;
};
// NAFNet-w32 forward under InferenceMode, random weights (seed 0).
void bench_nafnet_forward(const torch::Device& device, const ForwardBenchOptions& options,
                          const BenchReport& report);

// An n x n x n matrix product in float32 and, where the device supports it,
// bfloat16, each twice: at::mm (on the CPU the BLAS LibTorch was built with for
// float32, oneDNN for bfloat16) and the same multiply-adds as a channels-last
// 1x1 convolution (oneDNN, the NAFNet convolutions' library). The faster of the
// two is the machine's reachable peak for the GFLOP/s shares.
void bench_matmul_peak(const torch::Device& device, int64_t n, int repeat,
                       const BenchReport& report);

struct TrainBenchOptions {
  int64_t batch = 4;
  int64_t size = 256;      // crop (gt_size)
  int64_t num_masks = 30;  // SegNAFNet: masks per image
  int warmup = 2;          // untimed iterations first
  int repeat = 5;          // timed iterations (median reported)
  // How the network trains (train::TrainOptions::execution(): channels-last with
  // the fused kernels, which train through their hand-written backward
  // (models::set_fused_backward), or the exact default).
  models::ExecutionOptions execution;
  // Also time the exact path (default ExecutionOptions), interleaved iteration
  // by iteration with `execution` on identical weights and batch.
  bool ab = false;
};

// Training iterations as the official ImageRestorationModel.optimize_parameters
// runs them (the same steps as train::Trainer): zero_grad; pred = net(lq[,
// masks]); PSNRLoss(pred, gt) + 0 * sum(params); backward; clip_grad_norm_(params,
// 0.01); AdamW step (lr 1e-3, weight_decay 1e-3, betas (0.9, 0.9)). `type` is
// NAFNet or SegNAFNet (w32, random weights, seed 0); the batch lives in memory, so
// no data loading is timed. One result per execution (with ab: the exact path
// first); gflop counts the convolutions as 3x the forward's (forward, input and
// weight gradients).
void bench_train(const std::string& type, const TrainBenchOptions& options,
                 const torch::Device& device, const BenchReport& report);

}  // namespace samdeblur::train
