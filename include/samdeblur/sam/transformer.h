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
  // The two halves of forward, for callers that share a projection across a batch:
  // project_{q,k,v}: (B, N, D) -> (B, heads, N, internal_dim / heads);
  // attend: projected q (B, heads, Nq, c), k and v (B, heads, Nk, c) -> (B, Nq, D).
  // forward(q, k, v) == attend(project_q(q), project_k(k), project_v(v)).
  torch::Tensor project_q(const torch::Tensor& x);
  torch::Tensor project_k(const torch::Tensor& x);
  torch::Tensor project_v(const torch::Tensor& x);
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  int64_t embedding_dim, internal_dim, num_heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(DecoderAttention);

// The prompt-independent part of the first two-way layer for one image (deviation from the
// reference, same values): when every prompt of a batch sees the same image tokens
// (keys = image embedding + the no-mask dense embedding, batch 1), the projections of
// keys + key_pe by cross_attn_token_to_image.{k_proj} and cross_attn_image_to_token.{q_proj},
// and of keys by cross_attn_token_to_image.v_proj, are the same for every prompt. They are
// computed once on the batch-1 tokens (the predictor keeps them for all prompt batches of an
// image) and broadcast, instead of once per prompt on B copies of the same rows.
struct TwoWayImageCache {
  torch::Tensor t2i_k, t2i_v, i2t_q;  // (1, heads, h*w, c)
  bool defined() const { return t2i_k.defined(); }
};

// The fast execution's attentions (deviation from the reference: the same function, equal
// within fp32 rounding, not bit for bit). The image side's projections are folded into the
// few tokens' side by associativity, q . (W_k x + b_k) = (W_k^T q) . x + q . b_k and
// sum_t p_t (W_v x_t + b_v) = W_v sum_t p_t x_t + b_v (the p_t sum to 1), so that no
// (T, internal_dim) projection of the T image tokens is computed per prompt: for SAM's
// decoder (T = 4096, D = 256, 8 heads, 7 tokens) about 59M instead of 134M multiply-adds per
// projection.
// tokens_attend_image: a.forward(q_in, k_in, v_in) for q_in (g, N, D) tokens and k_in, v_in
// (1 or g, T, D) image tokens -> (g, N, D).
torch::Tensor tokens_attend_image(DecoderAttentionImpl& a, const torch::Tensor& q_in,
                                  const torch::Tensor& k_in, const torch::Tensor& v_in);
// keys + a.forward(q_in, k_in, v_in) for the image attending to the tokens: keys (1 or g, T, D),
// q_in (1 or g, T, D) image queries, k_in, v_in (g, N, D) tokens. q_proj: a.project_q(q_in)
// when it is at hand (shared image tokens: TwoWayImageCache), else undefined. The scores are
// computed transposed, (g, H, N, T), so that the softmax over the N tokens runs over an outer
// axis, vectorised over T; out_proj is folded into the values.
torch::Tensor image_attends_tokens(DecoderAttentionImpl& a, const torch::Tensor& keys,
                                   const torch::Tensor& q_in, const torch::Tensor& q_proj,
                                   const torch::Tensor& k_in, const torch::Tensor& v_in);

class TwoWayAttentionBlockImpl : public torch::nn::Module {
 public:
  TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                           int64_t attention_downsample_rate, bool skip_first_layer_pe);
  // queries, query_pe (B, N, D); keys (B, h*w, D) or (1, h*w, D) shared by the B prompts;
  // key_pe (1 or B, h*w, D) -> (queries (B, N, D), keys (B, h*w, D)). With shared keys, the
  // image-side projections are taken from `cache` when it is defined, else computed and
  // stored there (cache may be null).
  // fast: forward_fast.
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor queries, torch::Tensor keys,
                                                  const torch::Tensor& query_pe,
                                                  const torch::Tensor& key_pe,
                                                  TwoWayImageCache* cache = nullptr,
                                                  bool fast = false);
  // The same within fp32 rounding. With a cache, keys are batch-1 image tokens shared by the
  // prompts (the caller passes one only where they are prompt-independent): their projections
  // are computed once and kept there, whatever the batch. Without, the keys are per prompt
  // and go through tokens_attend_image and image_attends_tokens.
  std::pair<torch::Tensor, torch::Tensor> forward_fast(torch::Tensor queries, torch::Tensor keys,
                                                       const torch::Tensor& query_pe,
                                                       const torch::Tensor& key_pe,
                                                       TwoWayImageCache* cache);
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
  // image_embedding (B or 1, D, h, w), image_pe (B or 1, D, h, w); point_embedding (B, N, D)
  // -> (queries (B, N, D), keys (B, h*w, D)). A batch-1 image_embedding is shared by the B
  // prompts (TwoWayImageCache; `cache` as in TwoWayAttentionBlockImpl::forward).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& image_embedding,
                                                  const torch::Tensor& image_pe,
                                                  const torch::Tensor& point_embedding,
                                                  TwoWayImageCache* cache = nullptr);
  // The same on token-major image tokens: keys (B or 1, h*w, D), key_pe (B or 1, h*w, D)
  // (contiguous for speed); fast: the blocks' forward_fast and tokens_attend_image for the
  // final attention. forward() is forward_tokens(flattened, permuted inputs, ..., false).
  std::pair<torch::Tensor, torch::Tensor> forward_tokens(const torch::Tensor& keys,
                                                         const torch::Tensor& key_pe,
                                                         const torch::Tensor& point_embedding,
                                                         TwoWayImageCache* cache, bool fast);
  torch::nn::ModuleList layers{nullptr};
  DecoderAttention final_attn_token_to_image{nullptr};
  torch::nn::LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(TwoWayTransformer);

}  // namespace samdeblur::sam
