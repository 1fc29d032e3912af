// Mirrors segment_anything/modeling/transformer.py (TwoWayTransformer, TwoWayAttentionBlock,
// Attention).
#include "samdeblur/sam/transformer.h"

#include <algorithm>
#include <cmath>

namespace samdeblur::sam {

DecoderAttentionImpl::DecoderAttentionImpl(int64_t embedding_dim, int64_t num_heads,
                                           int64_t downsample_rate)
    : embedding_dim(embedding_dim),
      internal_dim(embedding_dim / downsample_rate),
      num_heads(num_heads) {
  TORCH_CHECK(num_heads > 0 && internal_dim % num_heads == 0, "num_heads ", num_heads,
              " must divide the internal dim ", internal_dim);
  q_proj = register_module("q_proj", torch::nn::Linear(embedding_dim, internal_dim));
  k_proj = register_module("k_proj", torch::nn::Linear(embedding_dim, internal_dim));
  v_proj = register_module("v_proj", torch::nn::Linear(embedding_dim, internal_dim));
  out_proj = register_module("out_proj", torch::nn::Linear(internal_dim, embedding_dim));
}

namespace {
// (B, N, C) -> (B, heads, N, C / heads)
torch::Tensor separate_heads(const torch::Tensor& x, int64_t heads) {
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}
// (B, heads, N, c) -> (B, N, heads * c)
torch::Tensor recombine_heads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}
}  // namespace

torch::Tensor DecoderAttentionImpl::project_q(const torch::Tensor& x) {
  return separate_heads(q_proj->forward(x), num_heads);
}
torch::Tensor DecoderAttentionImpl::project_k(const torch::Tensor& x) {
  return separate_heads(k_proj->forward(x), num_heads);
}
torch::Tensor DecoderAttentionImpl::project_v(const torch::Tensor& x) {
  return separate_heads(v_proj->forward(x), num_heads);
}

torch::Tensor DecoderAttentionImpl::attend(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v) {
  const int64_t c_per_head = q.size(3);
  auto attn = torch::matmul(q, k.permute({0, 1, 3, 2}));
  attn = attn / std::sqrt(static_cast<double>(c_per_head));
  attn = torch::softmax(attn, -1);
  return out_proj->forward(recombine_heads(torch::matmul(attn, v)));
}

torch::Tensor DecoderAttentionImpl::attend_fast(const torch::Tensor& q, const torch::Tensor& k,
                                                const torch::Tensor& v) {
  const int64_t heads = q.size(1), nq = q.size(2), c = q.size(3), nk = k.size(2);
  const int64_t bq = q.size(0), bk = k.size(0), b = std::max(bq, bk);
  const double scale = std::sqrt(static_cast<double>(c));
  // (b, heads, n, c) -> (heads, b * n, c)
  auto head_major = [&](const torch::Tensor& x) {
    return x.transpose(0, 1).reshape({heads, b * x.size(2), c});
  };
  // (heads, b, n, c) -> (b, n, heads * c)
  auto merge = [&](const torch::Tensor& x, int64_t n) {
    return x.view({heads, b, n, c}).permute({1, 2, 0, 3}).reshape({b, n, heads * c});
  };
  torch::Tensor out;
  if (nq <= nk) {  // tokens attend to the image (or to themselves)
    if (bk == 1) {
      auto attn = torch::bmm(head_major(q), k[0].transpose(1, 2)) / scale;  // (heads, b*nq, nk)
      out = merge(torch::bmm(torch::softmax(attn, -1), v[0]), nq);
    } else {
      auto attn = torch::softmax(torch::matmul(q, k.transpose(2, 3)) / scale, -1);
      out = recombine_heads(torch::matmul(attn, v));
    }
  } else if (bq == 1) {  // the shared image attends to each prompt's tokens
    auto attn_t = torch::bmm(head_major(k), q[0].transpose(1, 2)) / scale;  // (heads, b*nk, nq)
    attn_t = torch::softmax(attn_t.view({heads * b, nk, nq}), 1);
    out = merge(torch::bmm(attn_t.transpose(1, 2), head_major(v).view({heads * b, nk, c})), nq);
  } else {
    auto attn_t = torch::softmax(torch::matmul(k, q.transpose(2, 3)) / scale, 2);  // (b,h,nk,nq)
    out = recombine_heads(torch::matmul(attn_t.transpose(2, 3), v));
  }
  return out_proj->forward(out);
}

torch::Tensor DecoderAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                            const torch::Tensor& v_in) {
  return attend(project_q(q_in), project_k(k_in), project_v(v_in));
}

TwoWayAttentionBlockImpl::TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads,
                                                   int64_t mlp_dim,
                                                   int64_t attention_downsample_rate,
                                                   bool skip_first_layer_pe)
    : skip_first_layer_pe(skip_first_layer_pe) {
  auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({embedding_dim}));
  };  // eps 1e-5
  self_attn = register_module("self_attn", DecoderAttention(embedding_dim, num_heads));
  norm1 = register_module("norm1", ln());
  cross_attn_token_to_image =
      register_module("cross_attn_token_to_image",
                      DecoderAttention(embedding_dim, num_heads, attention_downsample_rate));
  norm2 = register_module("norm2", ln());
  mlp = register_module("mlp", MLPBlock(embedding_dim, mlp_dim, Activation::relu));
  norm3 = register_module("norm3", ln());
  norm4 = register_module("norm4", ln());
  cross_attn_image_to_token =
      register_module("cross_attn_image_to_token",
                      DecoderAttention(embedding_dim, num_heads, attention_downsample_rate));
}

std::pair<torch::Tensor, torch::Tensor> TwoWayAttentionBlockImpl::forward(
    torch::Tensor queries, torch::Tensor keys, const torch::Tensor& query_pe,
    const torch::Tensor& key_pe, TwoWayImageCache* cache, bool fast) {
  const int64_t B = queries.size(0);
  const bool shared = keys.size(0) == 1 && (B > 1 || fast);
  // Self attention of the tokens.
  if (skip_first_layer_pe) {
    queries = self_attn->forward(queries, queries, queries);
  } else {
    auto q = queries + query_pe;
    queries = queries + self_attn->forward(q, q, queries);
  }
  queries = norm1->forward(queries);
  // Image-side projections: per prompt, or once for keys shared by the batch (the same rows,
  // so the same values; expanded views, materialised by matmul as a per-prompt copy would be).
  TwoWayImageCache local;
  TwoWayImageCache& side = shared && cache ? *cache : local;
  if (!shared || !side.defined()) {
    const auto k = keys + key_pe;
    side.t2i_k = cross_attn_token_to_image->project_k(k);
    side.t2i_v = cross_attn_token_to_image->project_v(keys);
    side.i2t_q = cross_attn_image_to_token->project_q(k);
  }
  auto batch = [&](const torch::Tensor& t) {
    return shared && !fast ? t.expand({B, -1, -1, -1}) : t;
  };
  auto attend = [&](DecoderAttentionImpl& a, const torch::Tensor& q, const torch::Tensor& k,
                    const torch::Tensor& v) {
    return fast ? a.attend_fast(q, k, v) : a.attend(q, k, v);
  };
  // Tokens attend to the image.
  auto q = queries + query_pe;
  queries = norm2->forward(queries + attend(*cross_attn_token_to_image,
                                            cross_attn_token_to_image->project_q(q),
                                            batch(side.t2i_k), batch(side.t2i_v)));
  queries = norm3->forward(queries + mlp->forward(queries));
  // Image attends to the tokens.
  q = queries + query_pe;
  keys = norm4->forward(keys + attend(*cross_attn_image_to_token, batch(side.i2t_q),
                                      cross_attn_image_to_token->project_k(q),
                                      cross_attn_image_to_token->project_v(queries)));
  return {queries, keys};
}

TwoWayTransformerImpl::TwoWayTransformerImpl(int64_t depth, int64_t embedding_dim,
                                             int64_t num_heads, int64_t mlp_dim,
                                             int64_t attention_downsample_rate) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    layers->push_back(
        TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate, i == 0));
  final_attn_token_to_image =
      register_module("final_attn_token_to_image",
                      DecoderAttention(embedding_dim, num_heads, attention_downsample_rate));
  norm_final_attn = register_module(
      "norm_final_attn", torch::nn::LayerNorm(torch::nn::LayerNormOptions({embedding_dim})));
}

std::pair<torch::Tensor, torch::Tensor> TwoWayTransformerImpl::forward(
    const torch::Tensor& image_embedding, const torch::Tensor& image_pe,
    const torch::Tensor& point_embedding, TwoWayImageCache* cache) {
  TORCH_CHECK(image_embedding.dim() == 4, "image embedding must be (B, C, H, W), got ",
              image_embedding.sizes());
  // (B, C, H, W) -> (B, HW, C); image_pe may have batch 1 (broadcast in the additions).
  return forward_tokens(image_embedding.flatten(2).permute({0, 2, 1}),
                        image_pe.flatten(2).permute({0, 2, 1}), point_embedding, cache, false);
}

std::pair<torch::Tensor, torch::Tensor> TwoWayTransformerImpl::forward_tokens(
    const torch::Tensor& image_tokens, const torch::Tensor& key_pe,
    const torch::Tensor& point_embedding, TwoWayImageCache* cache, bool fast) {
  auto keys = image_tokens;
  auto queries = point_embedding;
  for (size_t i = 0; i < layers->size(); ++i) {
    std::tie(queries, keys) = layers[i]->as<TwoWayAttentionBlockImpl>()->forward(
        queries, keys, point_embedding, key_pe, i == 0 ? cache : nullptr, fast);
  }
  auto q = queries + point_embedding;
  auto k = keys + key_pe;
  auto& final_attn = *final_attn_token_to_image;
  queries = norm_final_attn->forward(
      queries + (fast ? final_attn.attend_fast(final_attn.project_q(q), final_attn.project_k(k),
                                               final_attn.project_v(keys))
                      : final_attn.forward(q, k, keys)));
  return {queries, keys};
}

}  // namespace samdeblur::sam
