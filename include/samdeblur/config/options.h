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
#include "samdeblur/metrics/metric.h"
#include "samdeblur/models/network.h"

namespace samdeblur::config {

// How a bool grouped mask enters the MAP unit.
//  official: value 1/255 (SAM-Deblur's masks2tensor divides bool masks by 255)
//  clean:    value 1.0
enum class MaskEncoding { official, clean };

// ext: masks computed on the fly (`datasets.<key>.mask_source`): masks/options.h.
using MaskSourceOptions = masks::MaskSourceOptions;

// The known dataset `type` values (the one list: the parser, the training
// options' validate() and the loaders' branches follow it).
const std::vector<std::string>& dataset_types();

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

// `val.metrics.<name>`: declared beside the metric table (metrics/metric.h).
using metrics::MetricOptions;

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

// ---- Section parsers shared by parse_eval_config and train::parse_train_config.
// Each reads its keys from `s` (marking them used); the caller adds what else it
// reads or ignores and calls s.finish().

// Top-level name, model_type, manual_seed, grouped_masks into `c`.
void parse_run_header(Section& root, EvalConfig& c);
// The keys every dataset has (name, type, dataroots, masks, filename_tmpl,
// mask_encoding, io_backend). `key` is the YAML key under `datasets`.
DatasetOptions parse_dataset(Section& s, const std::string& key);
// Keys of a dataset block that only training reads (gt_size, use_flip, ...);
// evaluation ignores them.
extern const std::initializer_list<const char*> kTrainOnlyDatasetKeys;
// Keys of a dataset block neither tool reads (phase is read by the caller).
extern const std::initializer_list<const char*> kUnusedDatasetKeys;
// True when datasets.<key> is a training set: phase 'train', or no phase and
// a key starting with "train" (BasicSR's convention).
bool is_train_dataset(Section& datasets, const std::string& key);
// `path`: pretrain_network_g, strict_load_g, param_key_g.
PathOptions parse_path(Section& s);
// `val`: save_img, grids, crop sizes, max_minibatch, mcr_threshold, metrics.
ValOptions parse_val(Section& s);
// `val.metrics.<name>`; the type is checked against metrics::metric_types().
MetricOptions parse_metric(Section& s, const std::string& name);
// network_g against the datasets it reads (masks present, kind of masks).
void check_network_matches_datasets(const models::NetworkOptions& network, bool grouped_masks,
                                    const std::vector<DatasetOptions>& datasets,
                                    const std::string& source);

}  // namespace samdeblur::config
