#pragma once
// Agreed interface between the Segment Anything model (src/sam/sam*.cpp,
// image encoder / prompt encoder / mask decoder) and its users (the automatic
// mask generator, sdb-masks). Mirrors segment_anything/predictor.py.
#include <torch/torch.h>
#include <opencv2/core.hpp>

#include <memory>
#include <string>

#include "samdeblur/sam/precision.h"

namespace samdeblur::sam {

// Which official configuration: vit_b, vit_l, vit_h, or a tiny test config.
struct SamConfig {
  std::string model_type = "vit_b";
  int64_t encoder_embed_dim = 768;
  int64_t encoder_depth = 12;
  int64_t encoder_num_heads = 12;
  std::vector<int64_t> encoder_global_attn_indexes = {2, 5, 8, 11};
  int64_t image_size = 1024;  // input side after ResizeLongestSide + padding
  int64_t patch_size = 16;
  int64_t window_size = 14;
  int64_t prompt_embed_dim = 256;
  int64_t mlp_dim_decoder = 2048;  // TwoWayTransformer mlp_dim
  int64_t decoder_depth = 2;
  int64_t decoder_num_heads = 8;
  int64_t num_multimask_outputs = 3;
  int64_t iou_head_depth = 3;
  int64_t iou_head_hidden_dim = 256;
  int64_t mask_in_chans = 16;  // PromptEncoder mask branch channels
  double mask_threshold = 0.0;

  static SamConfig vit_b();
  static SamConfig vit_l();
  static SamConfig vit_h();
  static SamConfig from_name(const std::string& model_type);  // Error listing valid names
};

// Result of one batch of point prompts (predictor.predict_torch).
struct PointPrediction {
  torch::Tensor masks;    // (B, C, H, W) float logits at the original image size (return_logits)
  torch::Tensor iou;      // (B, C) predicted IoU
  torch::Tensor low_res;  // (B, C, 256, 256) low-resolution logits
};

class Predictor {
 public:
  virtual ~Predictor() = default;
  // Encodes an RGB uint8 HWC image (ResizeLongestSide with PIL-compatible
  // antialiased bilinear resize, normalisation, padding) once.
  virtual void set_image(const cv::Mat& rgb_u8) = 0;
  // Point prompts already in the transformed (resized) frame: coords (B, N, 2) (x, y)
  // float, labels (B, N) int (1 = foreground). Uses the embedding of set_image.
  // make_predictor's implementation: float32 or float64 coords (float64 stays float64 until
  // the positional encoding, as in the reference); a padding point is appended as the
  // reference does; results are float32 inference tensors (computed under InferenceMode:
  // clone them before modifying them in place outside InferenceMode).
  virtual PointPrediction predict_torch(const torch::Tensor& point_coords,
                                        const torch::Tensor& point_labels,
                                        bool multimask_output) = 0;
  // Full prompt set (SamPredictor.predict_torch): any of points (coords + labels), boxes
  // (B, 4) xyxy in the transformed frame, mask_input (B, 1, 256, 256) low-res logits; undefined
  // tensors mean "absent". The default implementation supports points only.
  virtual PointPrediction predict_prompts(const torch::Tensor& point_coords,
                                          const torch::Tensor& point_labels,
                                          const torch::Tensor& boxes,
                                          const torch::Tensor& mask_input, bool multimask_output);
  // predict_torch without the upsampling, for callers that filter masks first (the automatic
  // mask generator drops masks that fail pred_iou_thresh before paying for their
  // full-resolution logits): low_res and iou are set; masks may be left undefined, in which
  // case upscale_masks gives, for any subset of the low-resolution masks, exactly the
  // corresponding masks predict_torch would have returned. The default returns predict_torch.
  virtual PointPrediction predict_low_res(const torch::Tensor& point_coords,
                                          const torch::Tensor& point_labels,
                                          bool multimask_output) {
    return predict_torch(point_coords, point_labels, multimask_output);
  }
  // (N, C, 256, 256) low-resolution logits -> (N, C, H, W) float32 logits at the original image
  // size (Sam.postprocess_masks); every plane is upsampled on its own, so the result does not
  // depend on which other masks are in the batch. Only called when predict_low_res left masks
  // undefined; the default throws.
  virtual torch::Tensor upscale_masks(const torch::Tensor& low_res) const;
  // Maps (N, 2) (x, y) coordinates of the original image into the transformed frame.
  virtual torch::Tensor apply_coords(const torch::Tensor& coords) const = 0;
  virtual torch::Tensor image_embedding() const = 0;  // (1, 256, 64, 64)
  virtual cv::Size original_size() const = 0;
  virtual cv::Size input_size() const = 0;  // after resize, before padding
  virtual const SamConfig& config() const = 0;
  virtual torch::Device device() const = 0;
  virtual double mask_threshold() const = 0;
};

// Builds SAM for `config` on `device` and loads `checkpoint` strictly (empty =
// random weights, for tests). When config.model_type is "auto", the type is
// detected from the checkpoint's shapes; a mismatch between a named type and the
// checkpoint is an Error naming both.
// half: float16 on CUDA (ignored with a warning on the CPU). precision bf16 (sam/precision.h):
// the model in bfloat16 on CUDA or a CPU with native bf16, Error elsewhere; takes precedence
// over half.
std::unique_ptr<Predictor> make_predictor(const SamConfig& config, const std::string& checkpoint,
                                          const torch::Device& device, bool half = false,
                                          Precision precision = Precision::fp32);

}  // namespace samdeblur::sam
