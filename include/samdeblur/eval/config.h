#pragma once
// The evaluation config in the official SAM-Deblur / BasicSR YAML schema
// (options/test/*/*.yml), and the section parsers the training config
// (train/train_config.h) reuses. Field names are the official keys; our
// extensions are marked "ext" and documented in README.md ("Config reference").
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/dataset/options.h"
#include "samdeblur/metrics/metric.h"
#include "samdeblur/metrics/realblur_align.h"
#include "samdeblur/models/execution.h"
#include "samdeblur/models/network.h"

namespace samdeblur::eval {

struct ValOptions {
  bool save_img = false;
  bool grids = false;  // official chunked inference (image_restoration_model.py grids())
  int64_t crop_size_h = 0, crop_size_w = 0;             // grids: absolute crop size, or
  double crop_size_h_ratio = 0, crop_size_w_ratio = 0;  // grids: fraction of H / W
  int64_t max_minibatch = 1;                            // grids: crops per forward
  std::vector<metrics::MetricOptions> metrics;          // `val.metrics.<name>` (metrics/metric.h)
  double mcr_threshold = 3.0;  // ext: collapse when PSNR(in) - PSNR(out) > this (dB)
  // ext: `none` (SAM-Deblur's unaligned scores) or `realblur` (RealBlur's
  // evaluation: output registered to gt, masked PSNR / SSIM; metrics/realblur_align.h).
  metrics::Alignment align = metrics::Alignment::none;
  // ext: how the network runs (models/execution.h): fp32 | bf16, and
  // auto | contiguous | channels_last (+ fused kernels). Defaults: fp32, auto
  // (channels_last on the CPU: within fp32 rounding of the exact path, which
  // `contiguous` selects).
  std::string precision = "fp32";
  std::string memory_format = models::kInferenceMemoryFormat;
};

struct PathOptions {
  std::string pretrain_network_g;  // checkpoint (.pth or .safetensors)
  bool strict_load_g = true;
  std::string param_key_g = "params";  // BasicSR key inside the checkpoint
};

struct EvalConfig {
  std::string source;  // config file path
  std::string name;
  std::string model_type = "ImageRestorationModel";
  int64_t manual_seed = 10;
  bool grouped_masks = false;
  std::vector<dataset::DatasetOptions> datasets;  // every non-train dataset, in file order
  models::NetworkOptions network_g;
  PathOptions path;
  ValOptions val;
  std::vector<std::string> ignored_keys;  // official keys this tool does not use
  YAML::Node resolved;                    // the tree after --set overrides
};

// Parses a test/eval config. Relative dataroots and checkpoint paths are kept
// as written (BasicSR resolves them against the working directory; so do we).
// Throws ConfigError naming the key and the file.
EvalConfig parse_eval_config(const YAML::Node& root, const std::string& source);

// Loads `path`, applies `overrides` ("a.b=c"), parses.
EvalConfig load_eval_config(const std::string& path,
                            const std::vector<std::string>& overrides = {});

// ---- Section parsers shared by parse_eval_config and train::parse_train_config
// (with dataset::parse_dataset and metrics::parse_metric). Each reads its keys
// from `s` (marking them used); the caller adds what else it reads or ignores
// and calls s.finish().

// Top-level name, model_type, manual_seed, grouped_masks into `c`.
void parse_run_header(config::Section& root, EvalConfig& c);
// `path`: pretrain_network_g, strict_load_g, param_key_g.
PathOptions parse_path(config::Section& s);
// `val`: save_img, grids, crop sizes, max_minibatch, mcr_threshold, align, metrics.
ValOptions parse_val(config::Section& s);
// network_g against the datasets it reads (masks present, kind of masks).
void check_network_matches_datasets(const models::NetworkOptions& network, bool grouped_masks,
                                    const std::vector<dataset::DatasetOptions>& datasets,
                                    const std::string& source);

}  // namespace samdeblur::eval
