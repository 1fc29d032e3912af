#pragma once
// Automatic mask generation with SAM: segment_anything/automatic_mask_generator.py
// (SamAutomaticMaskGenerator) reproduced step by step over the Predictor
// interface (sam/predictor.h). Options: sam/mask_generator_options.h. Mask
// sources, encodings and the cache built on it: masks/.
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
#include "samdeblur/sam/mask_generator_options.h"
#include "samdeblur/sam/predictor.h"

namespace samdeblur::sam {

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

}  // namespace samdeblur::sam
