#pragma once
// Typed options in the official SAM-Deblur / BasicSR YAML schema
// (options/test/*/*.yml). Field names are the official keys; our extensions are
// marked "ext" and documented in README.md ("Config reference").
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/masks/options.h"
#include "samdeblur/models/network.h"

namespace samdeblur::config {

// How a bool grouped mask enters the MAP unit.
//  official: value 1/255 (SAM-Deblur's masks2tensor divides bool masks by 255)
//  clean:    value 1.0
enum class MaskEncoding { official, clean };

// ext: masks computed on the fly (`datasets.<key>.mask_source`): masks/options.h.
using MaskSourceOptions = masks::MaskSourceOptions;

struct DatasetOptions {
  std::string key;   // the YAML key under `datasets` (test, val, test_1, ...)
  std::string name;  // `name`
  std::string type;  // PairedImageDataset | PairedImageMaskDataset | PairedImageGroupMaskDataset
  std::string dataroot_gt;
  std::string dataroot_lq;
  std::string dataroot_mask;      // empty for PairedImageDataset and with mask_source
  MaskSourceOptions mask_source;  // ext: exactly one of dataroot_mask / mask_source
  std::string filename_tmpl = "{}";
  MaskEncoding mask_encoding = MaskEncoding::official;  // ext
  bool needs_masks() const { return type != "PairedImageDataset"; }
  // Mask files are listed from dataroot_mask (false: none, or on the fly).
  bool masks_from_folder() const { return needs_masks() && !mask_source.on_the_fly(); }
  bool grouped_masks() const { return type == "PairedImageGroupMaskDataset"; }
};

struct MetricOptions {
  std::string name;  // the YAML key (psnr, ssim, ...)
  std::string type;  // calculate_psnr | calculate_ssim
  int crop_border = 0;
  bool test_y_channel = false;
  bool ssim3d = true;  // calculate_ssim only; official default
  // ext, calculate_ssim with ssim3d: "float64" (default: exact value of the
  // official formula, separable filter, fast) or "float32" (the official
  // arithmetic: direct conv3d in float32, slow; digits depend on the backend).
  std::string ssim3d_precision = "float64";
};

struct ValOptions {
  bool save_img = false;
  bool grids = false;  // official chunked inference (image_restoration_model.py grids())
  int64_t crop_size_h = 0, crop_size_w = 0;             // grids: absolute crop size, or
  double crop_size_h_ratio = 0, crop_size_w_ratio = 0;  // grids: fraction of H / W
  int64_t max_minibatch = 1;                            // grids: crops per forward
  std::vector<MetricOptions> metrics;
  double mcr_threshold = 3.0;  // ext: collapse when PSNR(in) - PSNR(out) > this (dB)
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
  std::vector<DatasetOptions> datasets;  // every non-train dataset, in file order
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

// The YAML tree as JSON (for summary.json); scalars become numbers/bools when they parse as such.
nlohmann::json yaml_to_json(const YAML::Node& node);

// Parses a `network_g` mapping (shared with training).
models::NetworkOptions parse_network_options(Section section);

}  // namespace samdeblur::config
