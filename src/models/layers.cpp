#include "samdeblur/models/layers.h"

#include "samdeblur/models/fused.h"
#include "samdeblur/models/fused_forward.h"

namespace samdeblur::models {
namespace {

// Mirrors arch_util.py LayerNormFunction: same forward arithmetic, and the same
// closed-form backward (not autograd's composition of the forward ops).
struct LayerNorm2dFunction : public torch::autograd::Function<LayerNorm2dFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps) {
    const int64_t c = x.size(1);
    auto mu = x.mean(1, /*keepdim=*/true);
    auto var = (x - mu).pow(2).mean(1, /*keepdim=*/true);
    auto y = (x - mu) / (var + eps).sqrt();
    ctx->saved_data["eps"] = eps;
    ctx->save_for_backward({y, var, weight});
    return weight.view({1, c, 1, 1}) * y + bias.view({1, c, 1, 1});
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto saved = ctx->get_saved_variables();
    const auto& y = saved[0];
    const auto& var = saved[1];
    const auto& weight = saved[2];
    const auto& grad = grad_outputs[0];
    const int64_t c = grad.size(1);
    auto g = grad * weight.view({1, c, 1, 1});
    auto mean_g = g.mean(1, /*keepdim=*/true);
    auto mean_gy = (g * y).mean(1, /*keepdim=*/true);
    auto gx = 1.0 / torch::sqrt(var + eps) * (g - y * mean_gy - mean_g);
    auto gw = (grad * y).sum(3).sum(2).sum(0);
    auto gb = grad.sum(3).sum(2).sum(0);
    return {gx, gw, gb, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor layer_norm_2d(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, double eps) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == weight.numel() && bias.numel() == weight.numel(),
              "layer_norm_2d: expected (N, ", weight.numel(), ", H, W) input, got ", x.sizes());
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (x.requires_grad() || weight.requires_grad() || bias.requires_grad());
  if (needs_grad) return LayerNorm2dFunction::apply(x, weight, bias, eps);
  if (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf) {
    // Statistics in float32; the network's reduced-precision path (ExecutionOptions).
    return layer_norm_2d(x.to(torch::kFloat), weight.to(torch::kFloat), bias.to(torch::kFloat), eps)
        .to(x.scalar_type());
  }
  // Same arithmetic without the autograd node (inference / no_grad).
  const int64_t c = x.size(1);
  auto mu = x.mean(1, /*keepdim=*/true);
  auto centered = x - mu;
  auto var = centered.pow(2).mean(1, /*keepdim=*/true);
  // centered / std, * weight, + bias in place: the same operations on the same values
  // (IEEE products and sums commute), one full-size tensor instead of four alive at once.
  return centered.div_((var + eps).sqrt())
      .mul_(weight.view({1, c, 1, 1}))
      .add_(bias.view({1, c, 1, 1}));
}

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(const torch::Tensor& x) {
  return layer_norm_2d(x, weight, bias, eps);
}

torch::Tensor simple_gate(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) % 2 == 0, "simple_gate: expected (N, 2C, H, W) input, got ",
              x.sizes());
  auto halves = x.chunk(2, 1);
  return halves[0] * halves[1];
}

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t groups = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).groups(groups).bias(true));
}

torch::nn::AnyModule dropout_or_identity(double rate) {
  if (rate > 0.0) return torch::nn::AnyModule(torch::nn::Dropout(rate));
  return torch::nn::AnyModule(torch::nn::Identity());
}

}  // namespace

NAFBlockImpl::NAFBlockImpl(const NAFBlockOptions& opts) : options(opts) {
  const int64_t c = options.channels();
  TORCH_CHECK(c > 0 && options.dw_expand() > 0 && options.ffn_expand() > 0,
              "NAFBlock: channels and expansions must be positive");
  const int64_t dw = c * options.dw_expand();
  const int64_t ffn = c * options.ffn_expand();
  // Registration order follows NAFNet_arch.py NAFBlock.__init__.
  conv1 = register_module("conv1", conv(c, dw, 1));
  conv2 = register_module("conv2", conv(dw, dw, 3, /*groups=*/dw));
  conv3 = register_module("conv3", conv(dw / 2, c, 1));
  sca = torch::nn::Sequential();
  if (options.local_pool()) {
    sca->push_back(LocalAvgPool2d(*options.local_pool()));
  } else {
    sca->push_back(torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(1)));
  }
  sca->push_back(conv(dw / 2, dw / 2, 1));
  register_module("sca", sca);
  conv4 = register_module("conv4", conv(c, ffn, 1));
  conv5 = register_module("conv5", conv(ffn / 2, c, 1));
  norm1 = register_module("norm1", LayerNorm2d(c));
  norm2 = register_module("norm2", LayerNorm2d(c));
  dropout1 = dropout_or_identity(options.drop_out_rate());
  dropout2 = dropout_or_identity(options.drop_out_rate());
  register_module("dropout1", dropout1.ptr());
  register_module("dropout2", dropout2.ptr());
  beta = register_parameter("beta", torch::zeros({1, c, 1, 1}));
  gamma = register_parameter("gamma", torch::zeros({1, c, 1, 1}));
}

torch::Tensor NAFBlockImpl::forward(const torch::Tensor& input) {
  const bool needs_grad =
      torch::GradMode::is_enabled() && (input.requires_grad() || beta.requires_grad());
  if (fused && !needs_grad && forward_kernels_apply(input))
    return nafblock_forward_cl(*this, input);
  if (fused && (!needs_grad || fused_backward) && fused_kernels_apply(input))
    return forward_fused(input);
  return forward_reference(input);
}

torch::Tensor NAFBlockImpl::forward_fused(const torch::Tensor& input) {
  // Without a gradient each *_autograd call is the plain kernel (inference).
  auto x = fused_layer_norm_2d_autograd(input, norm1->weight, norm1->bias, norm1->eps);
  x = conv2(conv1(x));  // (N, 2 * dw / 2, H, W)
  if (!options.local_pool() && fused_kernels_apply(x)) {
    auto& sca_conv = sca->at<torch::nn::Conv2dImpl>(1);
    x = fused_gate_attention_autograd(x, sca_conv.weight, sca_conv.bias);
  } else {
    x = fused_kernels_apply(x) ? fused_simple_gate_autograd(x) : simple_gate(x);
    x = x * sca->forward(x);
  }
  x = dropout1.forward(conv3(x));
  auto y = fused_scaled_residual_autograd(input, x, beta);  // input + x * beta
  x = conv4(fused_kernels_apply(y)
                ? fused_layer_norm_2d_autograd(y, norm2->weight, norm2->bias, norm2->eps)
                : norm2(y));
  x = fused_kernels_apply(x) ? fused_simple_gate_autograd(x) : simple_gate(x);
  x = dropout2.forward(conv5(x));
  return fused_scaled_residual_autograd(y, x, gamma);  // y + x * gamma
}

torch::Tensor NAFBlockImpl::forward_reference(const torch::Tensor& input) {
  auto x = norm1(input);
  x = conv2(conv1(x));
  x = simple_gate(x);
  // Without autograd the three products and residual sums run in place on tensors this
  // block made: the same IEEE operations on the same values (a + b == b + a), so the
  // same bits, with one full-size temporary fewer each (1 GB per 32-channel map at 4K).
  const bool in_place = !torch::GradMode::is_enabled() ||
                        !(input.requires_grad() || beta.requires_grad() || x.requires_grad());
  x = in_place ? x.mul_(sca->forward(x)) : x * sca->forward(x);
  x = dropout1.forward(conv3(x));
  auto y = in_place ? x.mul_(beta).add_(input) : input + x * beta;
  x = simple_gate(conv4(norm2(y)));
  x = dropout2.forward(conv5(x));
  return in_place ? x.mul_(gamma).add_(y) : y + x * gamma;
}

void set_fused_backward(torch::nn::Module& module, bool on) {
  if (auto* block = dynamic_cast<NAFBlockImpl*>(&module)) block->fused_backward = on;
  for (const auto& m : module.modules(/*include_self=*/false))
    if (auto* block = dynamic_cast<NAFBlockImpl*>(m.get())) block->fused_backward = on;
}

}  // namespace samdeblur::models
