#pragma once
// What users configure about masks: `datasets.<key>.mask_source` of an eval
// config (ext) and the flags of sdb-masks. Option fields are declared once
// (config/fields.h); the YAML reader, the CLI flags and the mask cache key are
// derived from the declarations.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "samdeblur/config/fields.h"
#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/sam/mask_generator_options.h"

namespace samdeblur::masks {

// SLIC superpixels (masks/superpixels.h); YAML keys sit directly under
// mask_source, CLI flags are --superpixel-<name> (--superpixel-size for region_size).
struct SuperpixelOptions {
  int region_size = 48;
  float ruler = 10.0f;
  int iterations = 10;
  int min_element_size_percent = 25;

  template <class Self, class V>
  static void fields(Self& self, V&& visit) {
    using config::Field;
    visit(Field{"region_size", "superpixel region size in pixels"}.at_least(2), self.region_size);
    visit(Field{"ruler", "SLIC smoothness (compactness)"}.above(0), self.ruler);
    visit(Field{"iterations", "SLIC iterations"}.at_least(1), self.iterations);
    visit(
        Field{"min_element_size_percent", "merge segments below this % of the region"}.at_least(0),
        self.min_element_size_percent);
  }
};

// Precomputed masks on disk (source "files", masks/source.h): YAML key
// mask_source.folder, CLI flag --masks-folder.
struct FilesSourceOptions {
  std::string folder;

  template <class Self, class V>
  static void fields(Self& self, V&& visit) {
    visit(config::Field{"folder",
                        "folder of precomputed masks: <image stem>.png (label map) or .npz "
                        "(grouped masks)"},
          self.folder);
  }
};

// ext: masks computed on the fly instead of read from dataroot_mask
// (`datasets.<key>.mask_source`). See masks/cache.h and masks/source.h.
struct MaskSourceOptions {
  // "" = masks come from dataroot_mask; otherwise one of mask_source_types()
  // (masks/source.h): "sam" = Segment Anything's automatic mask generator;
  // "superpixels" = SLIC superpixels (weight-free demos only); "files" =
  // precomputed masks read from files.folder.
  std::string type;
  std::string checkpoint;           // sam: official SAM checkpoint (required)
  std::string model_type = "auto";  // sam: auto | vit_b | vit_l | vit_h
  std::string cache_dir;            // empty = <output>/mask_cache (resolved by the evaluator)
  bool rgb = false;                 // sam: give SAM RGB (the official script passes BGR)
  // sam: compute precision, "fp32" (default, exact) or "bf16" (sam/precision.h); bf16 masks
  // differ slightly, so a non-default precision is part of the mask cache key.
  std::string precision = "fp32";
  sam::MaskGeneratorOptions generator;  // sam: every SamAutomaticMaskGenerator option
  SuperpixelOptions superpixels;        // superpixels: SLIC parameters
  FilesSourceOptions files;             // files: the folder of mask files
  // Grouping for PairedImageGroupMaskDataset: "official" (label map ->
  // grouped masks, as sdb-masks --format grouped-npz) or "exclusive"
  // (sdb-masks --format exclusive-npz, one group per pixel owner).
  std::string encoding = "official";
  std::string exclusive_order = "generator";  // exclusive: generator | smallest_first
  bool on_the_fly() const { return !type.empty(); }
};

// Parses the `mask_source` mapping of dataset section `dataset` (strict; errors
// name the file and the dotted key). dataset_type decides whether the exclusive
// encoding is allowed (PairedImageGroupMaskDataset only).
MaskSourceOptions parse_mask_source(config::Section& dataset, const std::string& dataset_type);

// Parses a `generator` mapping: every declared field, the points_per_side /
// point_grids exclusivity, validate(). output_mode is uncompressed_rle.
sam::MaskGeneratorOptions parse_generator_options(config::Section section);

}  // namespace samdeblur::masks

namespace samdeblur::config {

// point_grids: YAML a list of grids, each a list of [x, y] pairs in [0, 1]
// (float64 (N, 2) tensors); text "none" or "<n> grids sha256 <hex>" of the
// float64 values and shapes (the mask cache key).
template <>
struct FieldCodec<std::vector<at::Tensor>> {
  static void read(Section& s, const Field& f, std::vector<at::Tensor>& value);
  static std::string text(const std::vector<at::Tensor>& value);
};

}  // namespace samdeblur::config
