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

MLPBlockImpl::MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act) : act(act) {
  lin1 = register_module("lin1", torch::nn::Linear(embedding_dim, mlp_dim));
  lin2 = register_module("lin2", torch::nn::Linear(mlp_dim, embedding_dim));
}

torch::Tensor MLPBlockImpl::forward(const torch::Tensor& x) {
  auto h = lin1->forward(x);
  h = act == Activation::gelu ? torch::gelu(h) : torch::relu(h);
  return lin2->forward(h);
}

}  // namespace samdeblur::sam
