#pragma once
// Hand-written fused CPU kernels for the elementwise parts of the NAFBlock.
// Each equals the composition of ATen ops it replaces (models/layers.h) within
// float rounding; the summation order differs, so the results are not
// bit-identical (tests/models/fused_test.cpp bounds them). Float32 CPU tensors
// only, NCHW-contiguous or channels-last-contiguous. The fused_* kernels have no
// autograd; the *_autograd functions are torch::autograd::Functions with a
// hand-written backward (for training, models::set_fused_backward) and
// run the plain kernel when no gradient is needed. Every gradient is returned in
// its input's layout; weight and bias gradients are summed per block of pixels
// in float and over blocks in double, in an order that does not depend on the
// thread count.
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

// fused_layer_norm_2d, differentiable in x, weight and bias. Backward in one
// pass per block of pixels (the official LayerNormFunction.backward formula,
// arch_util.py): gx = (g - xhat * mean_c(g * xhat) - mean_c(g)) / sqrt(var + eps),
// g = gy * weight; gweight = sum(gy * xhat), gbias = sum(gy) over N, H, W.
// Saves x and the per-pixel mean and standard deviation.
torch::Tensor fused_layer_norm_2d_autograd(const torch::Tensor& x, const torch::Tensor& weight,
                                           const torch::Tensor& bias, double eps);

// simple_gate (the same ATen forward), differentiable in x: the backward writes
// ga = gy * b, gb = gy * a into one (N, 2C, H, W) tensor. Saves x.
torch::Tensor fused_simple_gate_autograd(const torch::Tensor& x);

// SimpleGate and the NAFBlock's global channel attention in one function:
// x (N, 2C, H, W), weight (C, C, 1, 1), bias (C) of the `sca.1` convolution:
//   g = x[:, :C] * x[:, C:], out = g * conv2d(mean_hw(g), weight, bias).
// Forward as NAFBlock::forward_fused (fused_gate_and_mean, then the scale in
// place); differentiable in x, weight and bias with a two-pass backward.
// Saves x, weight, the mean and the scale (not g).
torch::Tensor fused_gate_attention_autograd(const torch::Tensor& x, const torch::Tensor& weight,
                                            const torch::Tensor& bias);

// a + x * beta (beta: (1, C, 1, 1)), ATen's addcmul forward, differentiable in a, x and
// beta with a one-pass backward: gx = gy * beta and gbeta = sum_{N,H,W}(gy * x) together,
// without autograd's full-size gy * x. Falls back to torch::addcmul when no gradient is
// needed or the fused kernels cannot take x (the NAFBlock's residuals in training).
torch::Tensor fused_scaled_residual_autograd(const torch::Tensor& a, const torch::Tensor& x,
                                             const torch::Tensor& beta);

}  // namespace samdeblur::models
