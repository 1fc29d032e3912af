#include "samdeblur/sam/common.h"

namespace samdeblur::sam {

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == weight.size(0), "LayerNorm2d(", weight.size(0),
              ") expects (N, C, H, W) with C = ", weight.size(0), ", got ", x.sizes());
  // Same operation order as common.py, so float rounding matches.
  auto u = x.mean(1, /*keepdim=*/true);
  auto d = x - u;
  auto s = d.pow(2).mean(1, /*keepdim=*/true);
  auto y = d / torch::sqrt(s + eps);
  return weight.view({-1, 1, 1}) * y + bias.view({-1, 1, 1});
}

torch::Tensor linear_rows(const torch::nn::Linear& l, const torch::Tensor& x) {
  auto sizes = x.sizes().vec();
  sizes.back() = l->weight.size(0);
  const auto rows = x.reshape({-1, x.size(-1)});
  return (l->bias.defined() ? torch::addmm(l->bias, rows, l->weight.t())
                            : torch::mm(rows, l->weight.t()))
      .view(sizes);
}

MLPBlockImpl::MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act) : act(act) {
  lin1 = register_module("lin1", torch::nn::Linear(embedding_dim, mlp_dim));
  lin2 = register_module("lin2", torch::nn::Linear(mlp_dim, embedding_dim));
}

torch::Tensor MLPBlockImpl::forward(const torch::Tensor& x) {
  auto h = fused_linear ? linear_rows(lin1, x) : lin1->forward(x);
  h = act == Activation::gelu ? torch::gelu(h) : torch::relu(h);
  return fused_linear ? linear_rows(lin2, h) : lin2->forward(h);
}

}  // namespace samdeblur::sam
