#pragma once
// Options of SamAutomaticMaskGenerator (segment_anything/automatic_mask_generator.py),
// declared once (config/fields.h): the YAML reader of `mask_source.generator`, the
// flags of sdb-masks / sdb-sam-bench and the mask cache key are derived from
// MaskGeneratorOptions::fields(). Light header: no generator, no torch frontend.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "samdeblur/config/fields.h"

namespace samdeblur::sam {

enum class OutputMode { binary_mask, uncompressed_rle, coco_rle };
OutputMode output_mode_from_name(const std::string& name);  // Error listing valid names
std::string output_mode_name(OutputMode mode);

// Every option of SamAutomaticMaskGenerator, with its defaults.
struct MaskGeneratorOptions {
  // Exactly one of points_per_side and point_grids is set (as the official).
  std::optional<int64_t> points_per_side = 32;
  // Explicit (N, 2) float64 grids in [0, 1], one per crop layer.
  std::vector<at::Tensor> point_grids;
  int64_t points_per_batch = 64;
  double pred_iou_thresh = 0.88;
  double stability_score_thresh = 0.95;
  double stability_score_offset = 1.0;
  double box_nms_thresh = 0.7;
  int64_t crop_n_layers = 0;
  double crop_nms_thresh = 0.7;
  double crop_overlap_ratio = 512.0 / 1500.0;
  int64_t crop_n_points_downscale_factor = 1;
  int64_t min_mask_region_area = 0;
  // Not a user field: the consumer picks it (label maps need RLEs, coco-json
  // COCO RLEs), and it does not change which masks are produced.
  OutputMode output_mode = OutputMode::binary_mask;

  // The user-set fields, in the official argument order. point_grids' codec
  // (YAML lists, hashed in the cache key) lives in masks/options.h.
  template <class Self, class V>
  static void fields(Self& self, V&& visit) {
    using config::Field;
    visit(Field{"points_per_side", "prompt grid per side (null: give point_grids)"}.at_least(1),
          self.points_per_side);
    visit(Field{"point_grids", "explicit prompt grids, one per crop layer (YAML only)"},
          self.point_grids);
    visit(Field{"points_per_batch", "prompts per decoder batch"}.at_least(1),
          self.points_per_batch);
    visit(Field{"pred_iou_thresh", "keep masks whose predicted IoU exceeds this"},
          self.pred_iou_thresh);
    visit(Field{"stability_score_thresh", "keep masks whose stability score exceeds this"},
          self.stability_score_thresh);
    visit(Field{"stability_score_offset", "logit offset of the stability score"},
          self.stability_score_offset);
    visit(Field{"box_nms_thresh", "box IoU of the NMS within a crop"}, self.box_nms_thresh);
    visit(Field{"crop_n_layers", "crop layers (0: the whole image only)"}.at_least(0),
          self.crop_n_layers);
    visit(Field{"crop_nms_thresh", "box IoU of the NMS across crops"}, self.crop_nms_thresh);
    visit(Field{"crop_overlap_ratio", "overlap of neighbouring crops, fraction of the side"}
              .at_least(0)
              .below(1),
          self.crop_overlap_ratio);
    visit(Field{"crop_n_points_downscale_factor", "prompt grid divisor per crop layer"}.at_least(1),
          self.crop_n_points_downscale_factor);
    visit(
        Field{"min_mask_region_area", "remove holes and islands below this area (pixels)"}.at_least(
            0),
        self.min_mask_region_area);
  }

  // Throws ConfigError naming the option for out-of-range values.
  void validate() const;
};

}  // namespace samdeblur::sam
