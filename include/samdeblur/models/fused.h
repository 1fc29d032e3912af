#pragma once
// Hand-written fused CPU kernels for the elementwise parts of the NAFBlock
// (inference). Each equals the composition of ATen ops it replaces
// (models/layers.h) within float rounding; the summation order differs, so the
// results are not bit-identical (tests/models/fused_test.cpp bounds them).
// Float32 CPU tensors only, NCHW-contiguous or channels-last-contiguous; no
// autograd: callers use them only when no gradient is needed.
#include <torch/torch.h>

namespace samdeblur::models {

// True when the fused kernels can take `x` (float32, CPU, 4-D, contiguous in
// NCHW or channels-last order).
bool fused_kernels_apply(const torch::Tensor& x);

// LayerNorm2d in one pass over memory: per pixel, mean and biased variance of
// its C values, y = weight * (x - mean) / sqrt(var + eps) + bias.
// x: (N, C, H, W) -> (N, C, H, W), in x's memory format.
torch::Tensor fused_layer_norm_2d(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias, double eps);

// SimpleGate and the global average pool of the channel attention in one pass:
// x: (N, 2C, H, W) -> {gate (N, C, H, W) = x[:, :C] * x[:, C:] in x's memory
// format, mean (N, C, 1, 1) = gate averaged over H, W}. The mean is accumulated
// in double (ATen's adaptive_avg_pool2d accumulates in float).
std::pair<torch::Tensor, torch::Tensor> fused_gate_and_mean(const torch::Tensor& x);

}  // namespace samdeblur::models
