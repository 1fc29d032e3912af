#pragma once
// SegNAFNet / SegNAFNetLocal (reference: SegNAFNet_arch.py): NAFNet whose intro
// also receives SAM-guided features. pre_seg (3x3, img_channel -> seg_channel) and
// pre_seg_in (1x1) map the padded image to features, the MAP unit (map_unit.h)
// replaces every pixel by the mean of its mask, and [image, features] enter intro.
#include <torch/torch.h>

#include <vector>

#include "samdeblur/models/nafnet.h"
#include "samdeblur/models/network.h"

namespace samdeblur::models {

// forward: input (B, img_channel, H, W) and B SegMasks of size H x W ->
// (B, img_channel, H, W). In training mode floor(mask_dropout * M) masks per image are
// dropped (drop_masks; the global torch generator); eval mode is deterministic.
// The Local type is put in eval mode at construction, as the official constructor
// leaves it.
class SegNAFNetImpl : public DeblurNetImpl {
 public:
  explicit SegNAFNetImpl(const NetworkOptions& options);
  torch::Tensor forward(const torch::Tensor& input,
                        const std::vector<SegMasks>& masks = {}) override;
  bool needs_masks() const override { return true; }
  int64_t input_channels() const override { return options_.img_channel; }
  const NetworkOptions& options() const override { return options_; }
  NAFUNet& body() { return body_; }

  // The MAP features (B, seg_channel, Hp, Wp) of a padded input, exposed for tests.
  torch::Tensor seg_features(const torch::Tensor& padded_input, const std::vector<SegMasks>& masks);

  torch::nn::Conv2d pre_seg{nullptr}, pre_seg_in{nullptr};

 private:
  NetworkOptions options_;
  NAFUNet body_;
};
TORCH_MODULE(SegNAFNet);

}  // namespace samdeblur::models
