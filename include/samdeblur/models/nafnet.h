#pragma once
// NAFNet U-Net (reference: NAFNet_arch.py NAFNet / NAFNetLocal). NAFNetImpl serves
// the types "NAFNet" and "NAFNetLocal" (TLC: local SCA pooling, see local_pool.h).
#include <torch/torch.h>

#include <vector>

#include "samdeblur/models/layers.h"
#include "samdeblur/models/network.h"

namespace samdeblur::models {

// The U-Net shared by NAFNet and SegNAFNet: intro, encoders, downs, middle_blks,
// ups, decoders, ending. Not a module of its own: register_on() registers the
// parts directly on the owning network so the keys stay top-level
// (`intro.weight`, `encoders.0.0.conv1.weight`, `ups.0.0.weight`, ...), in the
// official order intro, ending, encoders, decoders, middle_blks, ups, downs.
class NAFUNet {
 public:
  // in_channels: channels fed to `intro` (img_channel + mask, or + seg_channel).
  // For options.is_local() every block's SCA pool gets tlc_pool_options() of its
  // level (only train_size H, W matter; the official CAT variant's extra train
  // channel does not change any kernel).
  void register_on(torch::nn::Module& owner, const NetworkOptions& options, int64_t in_channels);
  // x: (B, in_channels, Hp, Wp) with Hp, Wp multiples of padder_size() ->
  // (B, img_channel, Hp, Wp), the `ending` output (no residual).
  torch::Tensor forward(const torch::Tensor& x);
  int64_t padder_size() const { return padder_size_; }

  torch::nn::Conv2d intro{nullptr}, ending{nullptr};
  torch::nn::ModuleList encoders{nullptr}, decoders{nullptr}, ups{nullptr}, downs{nullptr};
  torch::nn::Sequential middle_blks{nullptr};

 private:
  std::vector<torch::nn::Sequential> encoder_seqs_, decoder_seqs_, up_seqs_;
  std::vector<torch::nn::Conv2d> down_convs_;
  int64_t padder_size_ = 1;
};

// Zero-pads (B, C, H, W) at the bottom/right to multiples of `multiple`
// (check_image_size in the reference).
torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t multiple);

// Feature size of U-Net level `level` (0 = full resolution) during the official
// TLC dummy forward at train size: padded train size / 2^level.
std::array<int64_t, 2> tlc_level_size(const NetworkOptions& options, int64_t level);

// NAFNet / NAFNetLocal / the CAT variant (mask: true, one more input channel).
// forward: (B, img_channel + mask, H, W) -> (B, img_channel, H, W); any H, W >= 1.
// The Local type is put in eval mode at construction, as the official constructor
// leaves it (it calls self.eval() before converting).
class NAFNetImpl : public DeblurNetImpl {
 public:
  explicit NAFNetImpl(const NetworkOptions& options);
  torch::Tensor forward(const torch::Tensor& input,
                        const std::vector<SegMasks>& masks = {}) override;
  bool needs_masks() const override { return false; }
  int64_t input_channels() const override { return options_.img_channel + (options_.mask ? 1 : 0); }
  const NetworkOptions& options() const override { return options_; }
  NAFUNet& body() { return body_; }

 private:
  NetworkOptions options_;
  NAFUNet body_;
};
TORCH_MODULE(NAFNet);

}  // namespace samdeblur::models
