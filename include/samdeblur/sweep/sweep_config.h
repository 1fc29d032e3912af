#pragma once
// A sweep file (`sdb-sweep --config SWEEP.yml`): a grid of variants (a test
// config in the official schema + a checkpoint) x datasets (folders, masks from
// folders or a shared mask_source), with an optional table of published numbers.
//
//   name: paper
//   variants:                     # the table's rows, in order (the first is the baseline)
//     - {name: w/o SAM, config: ../test/GoPro/NAFNet.yml, checkpoint: ../../NAFNet-GoPro.pth}
//   datasets:                     # the table's column groups, in order
//     - name: GoPro
//       dataroot_lq: ../../datasets/GoPro/test/input
//       dataroot_gt: ../../datasets/GoPro/test/target
//       dataroot_label_masks: ...      # label-map PNGs (PairedImageMaskDataset, CAT)
//       dataroot_grouped_masks: ...    # grouped .npz (PairedImageGroupMaskDataset, MAP)
//       mask_source: {type: sam, checkpoint: ...}  # or masks on the fly, cached once
//   reference:                    # optional: published numbers, shown beside ours
//     source: where they come from
//     values: {<variant>: {<dataset>: {psnr: 32.85, ssim: 0.960, mcr_percent: 0.20}}}
//
// A variant's `config` may also be a mapping from dataset names to config files,
// with an optional `default` for the others (every dataset needs one).
// Relative paths (config, checkpoint, dataroots, mask_source checkpoint /
// cache_dir / folder) are resolved against the sweep file's folder. Keys a
// dataset entry omits keep the variant config's values. Parsing is strict:
// unknown keys, wrong types, duplicate or empty names, a reference naming an
// unknown variant or dataset are ConfigErrors naming the file and the key.
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace samdeblur::sweep {

struct Variant {
  std::string name;        // the table's row label ("w/o SAM")
  std::string config;      // test YAML (official schema), resolved path ("" with per_dataset only)
  std::string checkpoint;  // resolved path
  // ext: `config: {<dataset>: file, ..., default: file}`, a test config per dataset
  // (the official ones use NAFNetLocal on GoPro and NAFNet elsewhere).
  std::map<std::string, std::string> config_per_dataset;
  // The config file for `dataset` (per-dataset entry, else `config`).
  const std::string& config_for(const std::string& dataset) const;
};

struct SweepDataset {
  std::string name;  // the table's column label ("GoPro")
  // Resolved folders; empty = keep the variant config's value.
  std::string dataroot_lq, dataroot_gt, dataroot_label_masks, dataroot_grouped_masks;
  // `mask_source` mapping (masks/options.h) with its paths resolved; null = none.
  // Used for the variants whose dataset type needs masks that no folder above gives.
  YAML::Node mask_source;
};

// One published cell; absent values are not shown.
struct ReferenceValue {
  std::optional<double> psnr, ssim;
  std::optional<double> mcr;  // fraction (the YAML key mcr_percent / 100)
};

struct Reference {
  std::string source;  // citation, shown in the table and the report
  std::map<std::string, std::map<std::string, ReferenceValue>> values;  // variant -> dataset
  const ReferenceValue* find(const std::string& variant, const std::string& dataset) const;
};

struct SweepConfig {
  std::string source;    // the sweep file
  std::string base_dir;  // its folder (relative paths are resolved against it)
  std::string name;
  std::vector<Variant> variants;
  std::vector<SweepDataset> datasets;
  std::optional<Reference> reference;
};

// Parses a sweep tree; `source` is the file (its folder resolves relative paths).
SweepConfig parse_sweep_config(const YAML::Node& root, const std::string& source);
// Loads (config::load_yaml_file: hardened) and parses a sweep file.
SweepConfig load_sweep_config(const std::string& path);

// The folder name of a variant or dataset: every character other than
// [A-Za-z0-9._-] becomes '_' ("w/o SAM" -> "w_o_SAM").
std::string slug(const std::string& name);

}  // namespace samdeblur::sweep
