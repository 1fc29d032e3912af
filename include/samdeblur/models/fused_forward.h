#pragma once
// Hand-written inference kernels of the channels-last NAFNet forward (ext: no
// official counterpart), float32 and bfloat16, beyond the float32 kernels of
// models/fused.h: they are what ExecutionOptions::fused runs on channels-last
// activations. Arithmetic in float32 whatever the storage; a bfloat16 result is
// rounded once (round to nearest even, as c10::BFloat16), where the ATen
// composition rounds after every op. No autograd: callers use them only when no
// gradient is needed. See README "Performance (NAFNet family)".
#include <torch/torch.h>

#include <utility>

namespace samdeblur::models {

class NAFBlockImpl;

// True when the kernels below take `x`: a 4-D strided CPU tensor, float32 or
// bfloat16, contiguous in channels-last order (memory (N, H, W, C)).
bool forward_kernels_apply(const torch::Tensor& x);

// LayerNorm2d: per pixel, mean and biased variance of its C values in float32,
// y = weight * (x - mean) / sqrt(var + eps) + bias, stored in x's dtype.
// (N, C, H, W) -> (N, C, H, W) channels-last.
torch::Tensor layer_norm_2d_cl(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps);

// SimpleGate: (N, 2C, H, W) -> (N, C, H, W) = x[:, :C] * x[:, C:], channels-last.
torch::Tensor simple_gate_cl(const torch::Tensor& x);

// SimpleGate and the global mean of the gate (channel attention's pooling) in one
// pass: {gate as simple_gate_cl, mean (N, C, 1, 1) float32 of the stored gate
// values, accumulated in float per 1024 pixels and in double across them}.
std::pair<torch::Tensor, torch::Tensor> gate_and_mean_cl(const torch::Tensor& x);

// The NAFBlock's depthwise 3x3 convolution (conv2: zero padding 1, stride 1,
// bias), SimpleGate and the gate's global mean in one pass, the convolution's
// output never stored: u (N, 2C, H, W) channels-last, weight (2C, 1, 3, 3), bias
// (2C) -> {gate (N, C, H, W) channels-last in u's dtype, mean (N, C, 1, 1) float32}.
// Float32 accumulation in a fixed tap order (not oneDNN's): equal to
// gate_and_mean_cl(conv2d(u, weight, bias, groups 2C)) within float rounding; in
// bfloat16 the convolution's output is not rounded before the gate.
std::pair<torch::Tensor, torch::Tensor> dwconv_gate_and_mean_cl(const torch::Tensor& u,
                                                                const torch::Tensor& weight,
                                                                const torch::Tensor& bias);

// y = a + x * scale, scale (C) float32 per channel (NAFBlock residuals with
// beta / gamma); a, x (N, C, H, W) channels-last of one dtype -> y like a.
torch::Tensor scaled_residual_cl(const torch::Tensor& a, const torch::Tensor& x,
                                 const torch::Tensor& scale);

// pixel_shuffle(x, 2) + skip in one pass, bit-identical to the composition (the
// U-Net decoder's up-sampler and skip connection): x (N, 4C, H, W), skip
// (N, C, 2H, 2W), both channels-last of one dtype -> (N, C, 2H, 2W) channels-last.
torch::Tensor pixel_shuffle_add_cl(const torch::Tensor& x, const torch::Tensor& skip);

// NAFBlock inference on a channels-last float32 / bfloat16 input
// (forward_kernels_apply): LayerNorm2d, conv2 + gate + mean, the second gate and
// the residuals by the kernels above (the 1x1 convolutions oneDNN's); for a single image the
// channel-attention scale is folded into conv3's weights (conv3(g * s) = (W3 diag(s)) g + b3: the
// scaled gate is never stored). Where nafblock_tile_kernels_apply, the block runs instead in
// tiles of a few pixels kept in L1, the 1x1 convolutions as register-blocked float32 products
// (AVX-512 FMA): the head LayerNorm2d + conv1 (C <= 64) and the tail conv3 (scale folded per
// image), + input * beta, LayerNorm2d, conv4, SimpleGate, conv5, + y * gamma (C <= 128), so
// that of the tail's eight full-size passes only one read of the gate and the input and one
// write remain. Equal to NAFBlockImpl::forward_reference within the dtype's rounding.
torch::Tensor nafblock_forward_cl(NAFBlockImpl& block, const torch::Tensor& input);

// True when nafblock_forward_cl runs `block` on `input` with the tile kernels: a float32
// input, C a multiple of 16 up to 128, global attention pool, dw_expand and ffn_expand 2,
// no active dropout (at larger C oneDNN's convolutions measured as fast or faster).
bool nafblock_tile_kernels_apply(const NAFBlockImpl& block, const torch::Tensor& input);

}  // namespace samdeblur::models
