#pragma once
// Timings for sdb-bench: the MAP unit (label-map vs dense path), the NAFNet-w32
// forward pass, and training iterations of NAFNet-w32 / SegNAFNet-w32 as the
// official ImageRestorationModel.optimize_parameters runs them.
// scripts/bench_official.py times the same cases in Python. The library prints
// nothing: cases are handed to a callback.
#include <torch/torch.h>

#include <functional>
#include <string>

#include "samdeblur/models/network.h"

namespace samdeblur::train {

// Median wall time (ms, the upper middle value for an even count) of `repeat`
// runs after one warm-up run; CUDA is synchronised after each run.
double time_ms(const std::function<void()>& fn, int repeat, const torch::Device& device);

// A partition of (h, w) into about `m` rectangular cells, labels 0..m-1 (int64).
torch::Tensor grid_labels(int64_t h, int64_t w, int64_t m);
// A random partition of (h, w) into at most `m` irregular cells (Voronoi cells
// of m random seeds, torch's global generator), labels 0..m-1: stands in for a
// grouped SAM mask file. (h, w) int64.
torch::Tensor random_partition(int64_t h, int64_t w, int64_t m);

// NAFNet-w32 / SegNAFNet-w32 of options/train/GoPro/{NAFNet,SegNAFNet}.yml.
models::NetworkOptions nafnet_w32(const std::string& type);

// Called with each case's name and median milliseconds.
using BenchReport = std::function<void(const std::string& name, double ms)>;

// MAP unit, label-map and dense paths, at 256x256 (M=64) and 1280x720 (M=300).
void bench_map_unit(const torch::Device& device, int repeat, const BenchReport& report);
// NAFNet-w32 forward at 256x256 and 1280x720 (half the repeats at 720p).
void bench_nafnet_forward(const torch::Device& device, int repeat, const BenchReport& report);

// Median seconds of one training iteration as the official
// ImageRestorationModel.optimize_parameters does it (the same steps as
// train::Trainer): zero_grad; pred = net(lq[, masks]); PSNRLoss(pred, gt)
// + 0 * sum(params); backward; clip_grad_norm_(params, 0.01); AdamW step
// (lr 1e-3, weight_decay 1e-3, betas (0.9, 0.9)). The batch lives in memory, so
// no data loading is timed. `warmup` untimed iterations come first.
double train_seconds(const std::string& type, int64_t batch, int64_t size, int64_t num_masks,
                     int warmup, int repeat, const torch::Device& device);

}  // namespace samdeblur::train
