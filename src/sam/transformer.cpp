// Mirrors segment_anything/modeling/transformer.py (TwoWayTransformer, TwoWayAttentionBlock,
// Attention).
#include "samdeblur/sam/transformer.h"

#include <cmath>
#include <utility>

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
// norm->forward(x), computed in float32 for a reduced-precision x on the CPU and rounded back
// (LibTorch 1.13's CPU layer_norm in bfloat16 took 0.9 of 2.1 s of a bf16 decoder batch).
torch::Tensor layer_norm_cpu_f32(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  if (x.scalar_type() == torch::kFloat || !x.device().is_cpu()) return norm->forward(x);
  const auto& o = norm->options;
  return torch::layer_norm(x.to(torch::kFloat), o.normalized_shape(),
                           norm->weight.to(torch::kFloat), norm->bias.to(torch::kFloat), o.eps())
      .to(x.scalar_type());
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
  if (fast) return forward_fast(std::move(queries), keys, query_pe, key_pe, cache);
  const int64_t B = queries.size(0);
  const bool shared = keys.size(0) == 1 && B > 1;
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
  auto batch = [&](const torch::Tensor& t) { return shared ? t.expand({B, -1, -1, -1}) : t; };
  // Tokens attend to the image.
  auto q = queries + query_pe;
  queries = norm2->forward(
      queries + cross_attn_token_to_image->attend(cross_attn_token_to_image->project_q(q),
                                                  batch(side.t2i_k), batch(side.t2i_v)));
  queries = norm3->forward(queries + mlp->forward(queries));
  // Image attends to the tokens.
  q = queries + query_pe;
  keys = norm4->forward(keys + cross_attn_image_to_token->attend(
                                   batch(side.i2t_q), cross_attn_image_to_token->project_k(q),
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
  auto attn = fast ? tokens_attend_image(*final_attn_token_to_image, q, k, keys)
                   : final_attn_token_to_image->forward(q, k, keys);
  queries = fast ? layer_norm_cpu_f32(norm_final_attn, queries + attn)
                 : norm_final_attn->forward(queries + attn);
  return {queries, keys};
}

// The fast execution (TwoWayAttentionBlockImpl::forward_fast). Shapes: g prompts, N tokens, T
// image tokens, D channels, H heads of c = internal_dim / H channels.
namespace {

// x (g, N, H, c), w (H, c, D) -> (g, H*N, D): row h*N + n of prompt b is x[b, n, h] @ w[h].
torch::Tensor heads_times(const torch::Tensor& x, const torch::Tensor& w) {
  const int64_t g = x.size(0), n = x.size(1), heads = x.size(2), c = x.size(3);
  const int64_t d = w.size(2);
  return torch::bmm(x.permute({2, 0, 1, 3}).reshape({heads, g * n, c}), w)
      .view({heads, g, n, d})
      .transpose(0, 1)
      .reshape({g, heads * n, d});
}

// x (g, N, H, c) . bias (H*c) per head -> (g, H*N, 1), rows as heads_times.
torch::Tensor heads_dot(const torch::Tensor& x, const torch::Tensor& bias) {
  const int64_t g = x.size(0), n = x.size(1), heads = x.size(2), c = x.size(3);
  return (x * bias.view({1, 1, heads, c})).sum(-1).transpose(1, 2).reshape({g, heads * n, 1});
}

// a (g, M, D) @ image^T with image (1 or g, T, D) -> (g, M, T); a batch-1 image is one product.
torch::Tensor times_image_t(const torch::Tensor& a, const torch::Tensor& image) {
  if (image.size(0) == 1)
    return torch::mm(a.reshape({-1, a.size(2)}), image[0].t())
        .view({a.size(0), a.size(1), image.size(1)});
  return torch::bmm(a, image.transpose(1, 2));
}

// p (g, M, T) @ image (1 or g, T, D) -> (g, M, D).
torch::Tensor times_image(const torch::Tensor& p, const torch::Tensor& image) {
  if (image.size(0) == 1)
    return torch::mm(p.reshape({-1, p.size(2)}), image[0]).view({p.size(0), p.size(1), -1});
  return torch::bmm(p, image);
}

}  // namespace

torch::Tensor tokens_attend_image(DecoderAttentionImpl& a, const torch::Tensor& q_in,
                                  const torch::Tensor& k_in, const torch::Tensor& v_in) {
  const int64_t g = q_in.size(0), n = q_in.size(1), heads = a.num_heads;
  const int64_t c = a.internal_dim / heads, d = a.embedding_dim;
  const auto q = linear_rows(a.q_proj, q_in).view({g, n, heads, c});
  // q . (W_k x + b_k) = (W_k^T q) . x + q . b_k, per head: (g, H*N, T) scores from (H*N, D)
  // folded queries instead of (T, c) projected keys.
  auto scores = times_image_t(heads_times(q, a.k_proj->weight.view({heads, c, d})), k_in);
  scores.add_(heads_dot(q, a.k_proj->bias)).div_(std::sqrt(static_cast<double>(c)));
  const auto attn = torch::softmax(scores, -1);
  // sum_t p_t (W_v x_t + b_v) = W_v (sum_t p_t x_t) + b_v: (g, H*N, D) weighted image tokens.
  const auto mixed = times_image(attn, v_in).view({g, heads, n, d});
  auto out = torch::bmm(mixed.transpose(0, 1).reshape({heads, g * n, d}),
                        a.v_proj->weight.view({heads, c, d}).transpose(1, 2))  // (H, g*N, c)
                 .view({heads, g, n, c})
                 .permute({1, 2, 0, 3})
                 .reshape({g, n, heads * c});
  out.add_(a.v_proj->bias);
  return linear_rows(a.out_proj, out);
}

torch::Tensor image_attends_tokens(DecoderAttentionImpl& a, const torch::Tensor& keys,
                                   const torch::Tensor& q_in, const torch::Tensor& q_proj,
                                   const torch::Tensor& k_in, const torch::Tensor& v_in) {
  const int64_t g = k_in.size(0), n = k_in.size(1), heads = a.num_heads;
  const int64_t c = a.internal_dim / heads, d = a.embedding_dim, t = keys.size(1);
  const auto k = linear_rows(a.k_proj, k_in).view({g, n, heads, c});
  const auto v = linear_rows(a.v_proj, v_in).view({g, n, heads, c});
  torch::Tensor scores;  // transposed: (g, H*N, T)
  if (q_proj.defined()) {
    scores = torch::bmm(k.permute({2, 0, 1, 3}).reshape({heads, g * n, c}),
                        q_proj[0].transpose(1, 2))  // (H, g*N, T)
                 .view({heads, g, n, t})
                 .transpose(0, 1)
                 .reshape({g, heads * n, t});
  } else {
    scores = times_image_t(heads_times(k, a.q_proj->weight.view({heads, c, d})), q_in);
    scores.add_(heads_dot(k, a.q_proj->bias));
  }
  scores.div_(std::sqrt(static_cast<double>(c)));
  // Softmax over the N tokens of each head: an outer axis of (g, H, N, T), vectorised over T.
  const auto attn = torch::softmax(scores.view({g, heads, n, t}), 2).view({g, heads * n, t});
  // out_proj folded into the values: out_proj(sum_j p_j v_j) = sum_j p_j (W_o,h v_j) + b_o.
  const auto w_out = a.out_proj->weight.view({d, heads, c}).permute({1, 2, 0});  // (H, c, D)
  auto out = torch::baddbmm(keys.expand({g, t, d}), attn.transpose(1, 2), heads_times(v, w_out));
  return out.add_(a.out_proj->bias);
}

std::pair<torch::Tensor, torch::Tensor> TwoWayAttentionBlockImpl::forward_fast(
    torch::Tensor queries, torch::Tensor keys, const torch::Tensor& query_pe,
    const torch::Tensor& key_pe, TwoWayImageCache* cache) {
  if (skip_first_layer_pe) {
    queries = self_attn->forward(queries, queries, queries);
  } else {
    auto q = queries + query_pe;
    queries = queries + self_attn->forward(q, q, queries);
  }
  queries = layer_norm_cpu_f32(norm1, queries);
  // Shared image tokens: their projections once (cache), as the plain path. Per-prompt image
  // tokens: the projections folded into the few tokens' side.
  const bool shared = cache != nullptr;
  TORCH_CHECK(!shared || keys.size(0) == 1,
              "two-way block: shared image tokens must have batch 1, got ", keys.sizes());
  torch::Tensor k;  // keys + key_pe, per prompt
  if (!shared) {
    k = keys + key_pe;
  } else if (!cache->defined()) {
    const auto ks = keys + key_pe;
    cache->t2i_k = cross_attn_token_to_image->project_k(ks);
    cache->t2i_v = cross_attn_token_to_image->project_v(keys);
    cache->i2t_q = cross_attn_image_to_token->project_q(ks);
  }
  auto q = queries + query_pe;
  torch::Tensor t2i;
  if (shared) {
    auto& a = *cross_attn_token_to_image;
    const int64_t g = q.size(0), n = q.size(1), heads = a.num_heads;
    const int64_t c = a.internal_dim / heads;
    // (H, g*N, c) @ (H, c, T): the heads batched over the prompts, the shared side not copied.
    auto qh = a.project_q(q).transpose(0, 1).reshape({heads, g * n, c});
    auto attn = torch::bmm(qh, cache->t2i_k[0].transpose(1, 2));
    attn.div_(std::sqrt(static_cast<double>(c)));
    t2i = a.out_proj->forward(torch::bmm(torch::softmax(attn, -1), cache->t2i_v[0])
                                  .view({heads, g, n, c})
                                  .permute({1, 2, 0, 3})
                                  .reshape({g, n, heads * c}));
  } else {
    t2i = tokens_attend_image(*cross_attn_token_to_image, q, k, keys);
  }
  queries = layer_norm_cpu_f32(norm2, queries + t2i);
  queries = layer_norm_cpu_f32(norm3, queries + mlp->forward(queries));
  q = queries + query_pe;
  keys = layer_norm_cpu_f32(
      norm4, image_attends_tokens(*cross_attn_image_to_token, keys, k,
                                  shared ? cache->i2t_q : torch::Tensor(), q, queries));
  return {queries, keys};
}

}  // namespace samdeblur::sam
