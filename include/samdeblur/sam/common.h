#pragma once
// Small layers shared by the SAM components (segment_anything/modeling/common.py).
// Registered names equal the official attribute names.
#include <torch/torch.h>

namespace samdeblur::sam {

// LayerNorm over the channel axis of (N, C, H, W), eps 1e-6, biased variance, computed
// exactly as common.py LayerNorm2d: (x - mean_c) / sqrt(var_c + eps) * weight + bias.
// Keys: weight (C) ones, bias (C) zeros.
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t channels, double eps = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

enum class Activation { gelu, relu };

// lin2(act(lin1(x))) on the last axis (common.py MLPBlock). Keys: lin1, lin2.
// The encoder uses GELU (exact erf form), the TwoWayTransformer ReLU.
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  Activation act;
};
TORCH_MODULE(MLPBlock);

}  // namespace samdeblur::sam
