// The common keys of a `datasets.<key>` block (dataset/options.h).
#include "samdeblur/dataset/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "samdeblur/core/error.h"

namespace samdeblur::dataset {

const std::vector<std::string>& dataset_types() {
  static const std::vector<std::string> types = {"PairedImageDataset", "PairedImageMaskDataset",
                                                 "PairedImageGroupMaskDataset"};
  return types;
}

const std::initializer_list<const char*> kTrainOnlyDatasetKeys = {"gt_size",
                                                                  "use_flip",
                                                                  "use_rot",
                                                                  "use_shuffle",
                                                                  "num_worker_per_gpu",
                                                                  "batch_size_per_gpu",
                                                                  "dataset_enlarge_ratio"};
const std::initializer_list<const char*> kUnusedDatasetKeys = {
    "scale", "mean", "std", "meta_info_file", "prefetch_mode", "pin_memory", "persistent_workers"};

bool is_train_dataset(config::Section& datasets, const std::string& key) {
  config::Section d = datasets.child(key);
  return d.get<std::string>("phase", key.rfind("train", 0) == 0 ? "train" : "val") == "train";
}

DatasetOptions parse_dataset(config::Section& s, const std::string& key) {
  DatasetOptions d;
  d.key = key;
  d.name = s.get<std::string>("name", key);
  d.type = s.required<std::string>("type");
  const auto& types = dataset_types();
  if (std::find(types.begin(), types.end(), d.type) == types.end())
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: {}", s.source(),
                                  s.key_path("type"), d.type, fmt::join(types, ", ")));
  d.dataroot_gt = s.required<std::string>("dataroot_gt");
  d.dataroot_lq = s.required<std::string>("dataroot_lq");
  if (d.needs_masks()) {
    // ext: masks from a folder (official) or on the fly (mask_source), exactly one.
    const bool folder = s.has("dataroot_mask"), on_the_fly = s.has("mask_source");
    if (folder && on_the_fly)
      throw ConfigError(fmt::format("{}: {} and {} are both set; give exactly one of them",
                                    s.source(), s.key_path("dataroot_mask"),
                                    s.key_path("mask_source")));
    if (on_the_fly)
      d.mask_source = masks::parse_mask_source(s, d.type);
    else if (folder)
      d.dataroot_mask = s.required<std::string>("dataroot_mask");
    else
      throw ConfigError(
          fmt::format("{}: required key '{}' is missing ({} needs mask files; or "
                      "set {} to compute them on the fly)",
                      s.source(), s.key_path("dataroot_mask"), d.type, s.key_path("mask_source")));
  } else {
    if (s.has("dataroot_mask")) s.ignore("dataroot_mask");
    if (s.has("mask_source")) s.ignore("mask_source");  // PairedImageDataset takes no masks
  }
  d.filename_tmpl = s.get<std::string>("filename_tmpl", "{}");
  const std::string enc = s.get<std::string>("mask_encoding", "official");
  if (enc == "official")
    d.mask_encoding = MaskEncoding::official;
  else if (enc == "clean")
    d.mask_encoding = MaskEncoding::clean;
  else
    throw ConfigError(fmt::format("{}: {} must be 'official' or 'clean', got '{}'", s.source(),
                                  s.key_path("mask_encoding"), enc));
  config::Section io = s.child("io_backend");
  const std::string backend = io.get<std::string>("type", "disk");
  if (backend != "disk")
    throw ConfigError(fmt::format("{}: {} = '{}': only 'disk' is supported", s.source(),
                                  io.key_path("type"), backend));
  io.finish(nullptr);
  s.ignore(kUnusedDatasetKeys);
  return d;
}

}  // namespace samdeblur::dataset
