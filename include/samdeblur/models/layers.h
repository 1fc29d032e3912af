#pragma once
// Building blocks of NAFNet (reference: NAFNet_arch.py, arch_util.py in
// HPLQAQ/SAM-Deblur). Registered names equal the official attribute names, so
// named_parameters() reproduces the official state_dict keys.
#include <torch/torch.h>

#include <optional>

#include "samdeblur/models/local_pool.h"

namespace samdeblur::models {

// Channel LayerNorm of a (N, C, H, W) tensor: every pixel is normalised over its
// C values with the biased variance, then scaled by weight (C) and shifted by
// bias (C). With autograd on it runs as a custom autograd function whose backward
// is the official LayerNormFunction.backward formula (arch_util.py):
//   gx = (g - y * mean_c(g * y) - mean_c(g)) / sqrt(var + eps),  g = grad * weight.
// A bfloat16/half input is normalised in float32 (statistics and affine) and the
// result is returned in the input's dtype (the bf16 inference path).
torch::Tensor layer_norm_2d(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, double eps);

class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t channels, double eps = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // (C), ones
  torch::Tensor bias;    // (C), zeros
  double eps;
};
TORCH_MODULE(LayerNorm2d);

// SimpleGate: splits (N, 2C, H, W) into two halves along C and multiplies them.
torch::Tensor simple_gate(const torch::Tensor& x);

class SimpleGateImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& x) { return simple_gate(x); }
};
TORCH_MODULE(SimpleGate);

struct NAFBlockOptions {
  explicit NAFBlockOptions(int64_t channels) : channels_(channels) {}
  TORCH_ARG(int64_t, channels);
  TORCH_ARG(int64_t, dw_expand) = 2;
  TORCH_ARG(int64_t, ffn_expand) = 2;
  TORCH_ARG(double, drop_out_rate) = 0.0;
  // Set for the TLC variants (*Local): the SCA pooling becomes a local average
  // pool with these options instead of the global AdaptiveAvgPool2d(1).
  TORCH_ARG(std::optional<LocalAvgPool2dOptions>, local_pool) = std::nullopt;
};

// NAFBlock (NAFNet_arch.py). Keys: conv1..conv5, sca.1 (sca.0 is the pooling),
// norm1, norm2, beta, gamma. beta/gamma are zero-initialised (1, C, 1, 1).
// Shape: (N, C, H, W) -> (N, C, H, W), in the input's memory format (NCHW or
// channels-last: no op inside changes the layout).
class NAFBlockImpl : public torch::nn::Module {
 public:
  explicit NAFBlockImpl(const NAFBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& input);
  // The composition of ATen ops that mirrors NAFNet_arch.py (the exact path).
  torch::Tensor forward_reference(const torch::Tensor& input);
  // The fused kernels of models/fused.h (one-pass LayerNorm2d, SimpleGate +
  // channel-attention mean in one pass, scale in place, residuals as addcmul).
  // Equal to forward_reference within float rounding. Differentiable: when a
  // gradient is needed, the kernels run as autograd functions with a
  // hand-written backward (the *_autograd functions of models/fused.h).
  torch::Tensor forward_fused(const torch::Tensor& input);

  // When set and no gradient is needed, forward() takes nafblock_forward_cl()
  // (models/fused_forward.h) for a channels-last float32 / bfloat16 CPU input and
  // forward_fused() for a contiguous float32 one (models::ExecutionOptions::fused);
  // with fused_backward, forward_fused() also when a gradient is needed
  // (set_fused_backward).
  bool fused = false;
  bool fused_backward = false;

  NAFBlockOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::Sequential sca{nullptr};
  torch::nn::Conv2d conv4{nullptr}, conv5{nullptr};
  LayerNorm2d norm1{nullptr}, norm2{nullptr};
  torch::nn::AnyModule dropout1, dropout2;  // Dropout, or Identity when the rate is 0
  torch::Tensor beta, gamma;
};
TORCH_MODULE(NAFBlock);

// Sets fused_backward on every NAFBlock inside `module`: where the execution
// turned the fused kernels on (DeblurNetImpl::set_execution with
// ExecutionOptions::fused), forward passes that need gradients take them too,
// through their hand-written backward (training with train.memory_format
// channels_last). Off (the default), such passes run the reference composition.
void set_fused_backward(torch::nn::Module& module, bool on);

}  // namespace samdeblur::models
