#pragma once
// Two-way transformer of the SAM mask decoder (segment_anything/modeling/transformer.py).
// Keys: layers.<i>.{self_attn, norm1, cross_attn_token_to_image, norm2, mlp.{lin1, lin2}, norm3,
// norm4, cross_attn_image_to_token}, final_attn_token_to_image, norm_final_attn; every attention
// has q_proj, k_proj, v_proj, out_proj.
#include <torch/torch.h>

#include <utility>

#include "samdeblur/sam/common.h"

namespace samdeblur::sam {

// Multi-head attention whose projections may downscale the embedding (internal dim
// = embedding_dim / downsample_rate).
class DecoderAttentionImpl : public torch::nn::Module {
 public:
  DecoderAttentionImpl(int64_t embedding_dim, int64_t num_heads, int64_t downsample_rate = 1);
  // q (B, Nq, D), k (B, Nk, D), v (B, Nk, D) -> (B, Nq, D)
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  int64_t embedding_dim, internal_dim, num_heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(DecoderAttention);

class TwoWayAttentionBlockImpl : public torch::nn::Module {
 public:
  TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                           int64_t attention_downsample_rate, bool skip_first_layer_pe);
  // -> (queries, keys)
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor queries, torch::Tensor keys,
                                                  const torch::Tensor& query_pe,
                                                  const torch::Tensor& key_pe);
  DecoderAttention self_attn{nullptr}, cross_attn_token_to_image{nullptr},
      cross_attn_image_to_token{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr}, norm4{nullptr};
  MLPBlock mlp{nullptr};  // ReLU
  bool skip_first_layer_pe;
};
TORCH_MODULE(TwoWayAttentionBlock);

class TwoWayTransformerImpl : public torch::nn::Module {
 public:
  TwoWayTransformerImpl(int64_t depth, int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                        int64_t attention_downsample_rate = 2);
  // image_embedding, image_pe (B, D, h, w); point_embedding (B, N, D)
  // -> (queries (B, N, D), keys (B, h*w, D))
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& image_embedding,
                                                  const torch::Tensor& image_pe,
                                                  const torch::Tensor& point_embedding);
  torch::nn::ModuleList layers{nullptr};
  DecoderAttention final_attn_token_to_image{nullptr};
  torch::nn::LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(TwoWayTransformer);

}  // namespace samdeblur::sam
