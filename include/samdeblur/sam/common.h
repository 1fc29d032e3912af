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

// nn::Linear on the last axis as one addmm on the (rows, in) view, the bias added inside the
// product. LibTorch's functional linear on inputs of 3 or more dimensions (and PyTorch 1.13's
// at::linear above 3) multiplies first and adds the bias in a second pass over the output.
// Equal to l->forward(x) within fp32 rounding (the bias enters the sum first).
torch::Tensor linear_rows(const torch::nn::Linear& l, const torch::Tensor& x);

enum class Activation { gelu, relu };

// lin2(act(lin1(x))) on the last axis (common.py MLPBlock). Keys: lin1, lin2.
// The encoder uses GELU (exact erf form), the TwoWayTransformer ReLU.
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  Activation act;
  // lin1, lin2 through linear_rows (within fp32 rounding); false: the reference's arithmetic.
  // The image encoder's blocks set it (EncoderBlockImpl), the decoder's plain path keeps false.
  bool fused_linear = false;
};
TORCH_MODULE(MLPBlock);

}  // namespace samdeblur::sam
