#pragma once
// Typed options of the official SAM-Deblur training YAML
// (options/train/GoPro/*.yml, read by basicsr/train.py). Field names are the
// official keys; our extensions are marked "ext". Parsing is strict: unknown
// keys, wrong types and missing required keys are ConfigErrors naming the
// dotted key and the file. The datasets, `path`, `val` and `network_g` are
// read by the section parsers of the evaluation config (eval/config.h), so a
// training config accepts exactly the keys sdb-eval accepts there.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "samdeblur/eval/config.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/models/network.h"
#include "samdeblur/train/scheduler.h"
#include "samdeblur/train/train_dataset.h"

namespace samdeblur::train {

struct TrainOptions {
  OptimizerOptions optim_g;    // train/scheduler.h
  SchedulerOptions scheduler;  // train/scheduler.h (total_iter copied from train.total_iter)
  int64_t total_iter = 0;
  int64_t warmup_iter = -1;      // -1: none
  double loss_weight = 1.0;      // pixel_opt (PSNRLoss)
  bool loss_to_y = false;        // pixel_opt.toY
  bool use_grad_clip = true;     // official default: clip_grad_norm_(params, 0.01)
  double grad_clip_norm = 0.01;  // ext
  bool skip_nonfinite = false;   // ext: skip a step with NaN/Inf loss instead of stopping
  std::string amp = "none";      // ext, CUDA only: none | bf16 | fp16 (autocast)
  // ext: "contiguous" (default: the exact path) or "channels_last": the network
  // runs channels-last with the fused NAFBlock kernels and their hand-written
  // backward (models/fused.h; CPU float32, elsewhere channels-last only); loss
  // and gradients equal the default's within float32 rounding. As sdb-eval's
  // val.memory_format. `channels_last: true` is the older spelling.
  std::string memory_format = "contiguous";

  // The network's execution for training; where it turns the fused kernels on,
  // the trainer also sets models::set_fused_backward.
  models::ExecutionOptions execution() const;
};

struct LoggerOptions {
  int64_t print_freq = 100;
  int64_t save_checkpoint_freq = 5000;
  bool use_tb_logger = true;
  int64_t keep_last = 3;  // ext: training states kept (best/latest weights always kept)
};

struct TrainConfig {
  std::string source;
  std::string name;
  int64_t manual_seed = 10;
  bool grouped_masks = false;
  int64_t num_gpu = 1;
  TrainDatasetOptions train_set;  // datasets.train (train/train_dataset.h)
  // Validation: the eval view of the same file (datasets other than train,
  // network_g, path.pretrain_network_g, val). val_datasets may be empty.
  std::vector<dataset::DatasetOptions> val_datasets;
  eval::ValOptions val;
  int64_t val_freq = 0;  // 0 = no validation during training
  models::NetworkOptions network_g;
  eval::PathOptions path;
  std::string resume_state;      // path.resume_state
  std::string experiments_root;  // ext path.experiments_root, default experiments/<name>
  TrainOptions train;
  LoggerOptions logger;
  std::string dist_backend = "gloo";  // dist_params.backend (nccl on CPU falls back to gloo)
  int64_t dist_port = 29500;          // dist_params.port (MASTER_PORT wins)
  std::vector<std::string> ignored_keys;
  YAML::Node resolved;

  // The evaluation config for validation (same datasets, network, val).
  eval::EvalConfig eval_view() const;
};

// Parses a training config. Throws ConfigError naming the key and the file.
TrainConfig parse_train_config(const YAML::Node& root, const std::string& source);
// Loads `path`, applies `overrides` ("a.b=c"), parses.
TrainConfig load_train_config(const std::string& path,
                              const std::vector<std::string>& overrides = {});

// Checks what only the file system can tell, before any training: every
// dataset folder exists and pairs up with at least one sample (and at least
// batch_size_per_gpu training samples), the pretrained checkpoint exists.
// Throws ConfigError naming the file, the key (datasets.train.dataroot_lq, ...)
// and the path.
void check_data(const TrainConfig& cfg);

}  // namespace samdeblur::train
