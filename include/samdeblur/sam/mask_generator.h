#pragma once
// Automatic mask generation with SAM: segment_anything/automatic_mask_generator.py
// (SamAutomaticMaskGenerator) reproduced step by step over the Predictor
// interface (sam/predictor.h), plus a weight-free superpixel source for demos.
//
// Parity: the same masks in the same order as the official generator (tests:
// tests/sam/mask_generator_test.cpp against scripts/make_amg_fixtures.py).
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "samdeblur/sam/amg.h"
#include "samdeblur/sam/predictor.h"

namespace samdeblur::sam {

enum class OutputMode { binary_mask, uncompressed_rle, coco_rle };
OutputMode output_mode_from_name(const std::string& name);  // Error listing valid names
std::string output_mode_name(OutputMode mode);

// Every option of SamAutomaticMaskGenerator, with its defaults.
struct MaskGeneratorOptions {
  // Exactly one of points_per_side and point_grids is set (as the official).
  std::optional<int64_t> points_per_side = 32;
  // Explicit (N, 2) float64 grids in [0, 1], one per crop layer.
  std::vector<torch::Tensor> point_grids;
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
  OutputMode output_mode = OutputMode::binary_mask;

  // Throws ConfigError naming the option for out-of-range values.
  void validate() const;
};

// One record of SamAutomaticMaskGenerator.generate().
struct MaskRecord {
  Rle rle;                    // always set (the generator's internal form)
  torch::Tensor binary_mask;  // (H, W) bool, set in binary_mask mode
  CocoRle coco;               // set in coco_rle mode
  int64_t area = 0;
  Box bbox{};                                       // XYWH
  double predicted_iou = 0;                         // float32 value of the model's IoU prediction
  std::vector<std::array<double, 2>> point_coords;  // [[x, y]] in image pixels
  double stability_score = 0;
  Box crop_box{};  // XYWH

  // The official JSON record (scripts/amg.py); "segmentation" is the RLE in
  // uncompressed_rle / coco_rle mode and omitted in binary_mask mode.
  nlohmann::json to_json(OutputMode mode) const;
};

// Wall time per stage, seconds (CUDA is synchronised around each stage).
struct StageTimes {
  double encoder = 0;  // set_image, once per crop
  double decoder = 0;  // predict_torch, all batches
  double post = 0;     // filtering, NMS, RLE, small-region post-processing, encoding
  double total() const { return encoder + decoder + post; }
};

struct GenerateResult {
  std::vector<MaskRecord> masks;
  StageTimes times;
  int64_t crops = 0;
  int64_t points = 0;             // prompts run through the decoder
  torch::Tensor image_embedding;  // (1, 256, 64, 64) of the whole image, when keep_embedding
};

class MaskGenerator {
 public:
  // The predictor must outlive the generator. Options are validated here.
  MaskGenerator(Predictor& predictor, MaskGeneratorOptions options);
  // image: uint8 HWC, 3 channels, handed to Predictor::set_image unchanged
  // (the official SAM-Deblur script passes OpenCV's BGR image; convert to RGB
  // first for SAM's intended input). keep_embedding stores the first crop's
  // (the whole image's) embedding on the CPU.
  GenerateResult generate(const cv::Mat& image, bool keep_embedding = false);
  const MaskGeneratorOptions& options() const { return options_; }

 private:
  Predictor& predictor_;
  MaskGeneratorOptions options_;
  std::vector<torch::Tensor> point_grids_;
};

// Deterministic weight-free masks for demos and tests: cv::ximgproc SLICO
// superpixels (region_size pixels, ruler 10, 10 iterations, connectivity
// enforced) of the image, one record per superpixel in label order, with
// predicted_iou = stability_score = 1, the centroid as point and the whole
// image as crop box (region_size is clamped to the image's short side, and an
// image shorter than 4 pixels is one superpixel). Not a substitute for SAM:
// callers must ask for it.
struct SuperpixelOptions {
  int region_size = 48;
  float ruler = 10.0f;
  int iterations = 10;
  int min_element_size_percent = 25;
};
GenerateResult superpixel_masks(const cv::Mat& image_bgr, const SuperpixelOptions& options = {},
                                OutputMode mode = OutputMode::binary_mask);

}  // namespace samdeblur::sam
