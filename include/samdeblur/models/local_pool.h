#pragma once
// Local average pooling of the TLC variants (NAFNetLocal, SegNAFNetLocal):
// reference local_arch.py / seg_local_arch.py (class AvgPool2d / SegAvgPool2d,
// identical code). The official converts a model by replacing every
// AdaptiveAvgPool2d(1) and running one dummy forward at `train_size`, during which
// each pool records its kernel from the feature size it sees. We derive the same
// numbers at construction time from the feature size of the block's U-Net level
// (tlc_pool_options), so no dummy forward is needed.
#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace samdeblur::models {

struct LocalAvgPool2dOptions {
  std::array<int64_t, 2> kernel_size{0, 0};  // (kh, kw)
  bool fast_imp = false;                     // non-equivalent strided cumsum variant
  std::array<int64_t, 2> max_r{5, 5};        // fast_imp only: cap of the stride (rows, cols)
  bool auto_pad = true;                      // replicate-pad the output back to the input size
};

// The official first-forward rule with base_size = int(1.5 * train_h), int(1.5 * train_w)
// and (feature_h, feature_w) the size the pool sees during the dummy forward at train size:
//   kernel = feature * base // train,  max_r = max(1, 5 * feature // train).
LocalAvgPool2dOptions tlc_pool_options(int64_t feature_h, int64_t feature_w, int64_t train_h,
                                       int64_t train_w, bool fast_imp);

// Functional form. x: (N, C, H, W). Returns (N, C, 1, 1) when the kernel covers the
// whole input (both dims), else (N, C, H, W) with auto_pad (the un-padded local means
// otherwise).
torch::Tensor local_avg_pool2d(const torch::Tensor& x, const LocalAvgPool2dOptions& options);

class LocalAvgPool2dImpl : public torch::nn::Module {
 public:
  explicit LocalAvgPool2dImpl(const LocalAvgPool2dOptions& options) : options(options) {}
  torch::Tensor forward(const torch::Tensor& x) { return local_avg_pool2d(x, options); }
  void pretty_print(std::ostream& stream) const override;
  LocalAvgPool2dOptions options;
};
TORCH_MODULE(LocalAvgPool2d);

}  // namespace samdeblur::models
