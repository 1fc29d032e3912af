#pragma once
// The `datasets.<key>` section of the official SAM-Deblur / BasicSR YAML schema
// (options/test/*/*.yml): the keys every dataset has, shared by the evaluation
// config (eval/config.h) and the training config (train/train_config.h). Field
// names are the official keys; our extensions are marked "ext" and documented
// in README.md ("Config reference").
#include <initializer_list>
#include <string>
#include <vector>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/masks/options.h"

namespace samdeblur::dataset {

// How a bool grouped mask enters the MAP unit.
//  official: value 1/255 (SAM-Deblur's masks2tensor divides bool masks by 255)
//  clean:    value 1.0
enum class MaskEncoding { official, clean };

// The known dataset `type` values (the one list: the parser, the training
// options' validate() and the loaders' branches follow it).
const std::vector<std::string>& dataset_types();

struct DatasetOptions {
  std::string key;   // the YAML key under `datasets` (test, val, test_1, ...)
  std::string name;  // `name`
  std::string type;  // PairedImageDataset | PairedImageMaskDataset | PairedImageGroupMaskDataset
  std::string dataroot_gt;
  std::string dataroot_lq;
  std::string dataroot_mask;             // empty for PairedImageDataset and with mask_source
  masks::MaskSourceOptions mask_source;  // ext: exactly one of dataroot_mask / mask_source
  std::string filename_tmpl = "{}";
  MaskEncoding mask_encoding = MaskEncoding::official;  // ext
  bool needs_masks() const { return type != "PairedImageDataset"; }
  // Mask files are listed from dataroot_mask (false: none, or on the fly).
  bool masks_from_folder() const { return needs_masks() && !mask_source.on_the_fly(); }
  bool grouped_masks() const { return type == "PairedImageGroupMaskDataset"; }
};

// The keys every dataset has (name, type, dataroots, masks, filename_tmpl,
// mask_encoding, io_backend), read from `s` (marking them used); the caller
// adds what else it reads or ignores and calls s.finish(). `key` is the YAML
// key under `datasets`. Throws ConfigError naming the file and the dotted key.
DatasetOptions parse_dataset(config::Section& s, const std::string& key);
// Keys of a dataset block that only training reads (gt_size, use_flip, ...);
// evaluation ignores them.
extern const std::initializer_list<const char*> kTrainOnlyDatasetKeys;
// Keys of a dataset block neither tool reads (phase is read by the caller).
extern const std::initializer_list<const char*> kUnusedDatasetKeys;
// True when datasets.<key> is a training set: phase 'train', or no phase and
// a key starting with "train" (BasicSR's convention).
bool is_train_dataset(config::Section& datasets, const std::string& key);

}  // namespace samdeblur::dataset
