#pragma once
// The Segment Anything model (segment_anything/modeling/sam.py, build_sam.py): image encoder,
// prompt encoder and mask decoder under the official state_dict names, plus checkpoint
// loading with model-type detection.
#include <torch/torch.h>

#include <set>
#include <string>
#include <utility>

#include "samdeblur/io/checkpoint.h"
#include "samdeblur/sam/image_encoder.h"
#include "samdeblur/sam/mask_decoder.h"
#include "samdeblur/sam/predictor.h"
#include "samdeblur/sam/prompt_encoder.h"

namespace samdeblur::sam {

class SamImpl : public torch::nn::Module {
 public:
  explicit SamImpl(const SamConfig& config);

  // x (B, 3, h, w) RGB in [0, 255] (any real or uint8 dtype), h, w <= image_size
  // -> (B, 3, image_size, image_size) float: (x - pixel_mean) / pixel_std, zero-padded
  // bottom/right (Sam.preprocess).
  torch::Tensor preprocess(const torch::Tensor& x);
  // masks (B, C, h', w') decoder logits -> bilinear (align_corners=False) to image_size,
  // crop to input_size (h, w), bilinear to original_size (H, W) (Sam.postprocess_masks).
  torch::Tensor postprocess_masks(const torch::Tensor& masks,
                                  std::pair<int64_t, int64_t> input_size,
                                  std::pair<int64_t, int64_t> original_size);

  SamConfig config;
  ImageEncoderViT image_encoder{nullptr};
  PromptEncoder prompt_encoder{nullptr};
  MaskDecoder mask_decoder{nullptr};
  // (3, 1, 1) buffers. The reference registers them with persistent=False, so official
  // checkpoints do not contain them; load_sam_state_dict accepts checkpoints with or without.
  torch::Tensor pixel_mean, pixel_std;
};
TORCH_MODULE(Sam);

// Buffers the reference does not save in its state_dict ("pixel_mean", "pixel_std").
const std::set<std::string>& non_persistent_buffers();

// "vit_b" / "vit_l" / "vit_h" from image_encoder.patch_embed.proj.weight (out channels
// 768 / 1024 / 1280) and the number of image_encoder.blocks; Error naming `source`, the
// embed dim and depth found otherwise.
std::string detect_model_type(const io::StateDict& sd, const std::string& source);

// The configuration to build for `requested` and a checkpoint: model_type "auto" -> the
// detected official config (mask_threshold kept); an official name ("vit_b", "vit_l",
// "vit_h", "default") that disagrees with the checkpoint -> Error naming both; any other
// model_type (custom/tiny configs) is returned unchanged and checked by strict loading.
SamConfig resolve_config(const SamConfig& requested, const io::StateDict& sd,
                         const std::string& source);

// Strict load (io::load_state_dict): every missing, unexpected or mis-shaped key is an
// Error; pixel_mean/pixel_std are taken from the checkpoint when present, otherwise the
// model's defaults are kept.
void load_sam_state_dict(SamImpl& model, const io::StateDict& sd, const std::string& source);

// Builds SAM for `config` (after resolve_config when a checkpoint is given), loads the
// checkpoint strictly (empty path = random weights), moves it to `device` in eval mode.
Sam make_sam(const SamConfig& config, const std::string& checkpoint, const torch::Device& device);

}  // namespace samdeblur::sam
