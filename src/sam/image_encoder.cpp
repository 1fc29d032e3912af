// Mirrors segment_anything/modeling/image_encoder.py (ImageEncoderViT, Block, Attention,
// window_partition/unpartition, get_rel_pos, add_decomposed_rel_pos, PatchEmbed).
#include "samdeblur/sam/image_encoder.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "samdeblur/core/torch_compat.h"
#include "samdeblur/sam/attention_kernels.h"

namespace F = torch::nn::functional;

namespace samdeblur::sam {

std::pair<torch::Tensor, std::pair<int64_t, int64_t>> window_partition(const torch::Tensor& x,
                                                                       int64_t window_size) {
  TORCH_CHECK(x.dim() == 4, "window_partition expects (B, H, W, C), got ", x.sizes());
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t pad_h = (window_size - H % window_size) % window_size;
  const int64_t pad_w = (window_size - W % window_size) % window_size;
  torch::Tensor padded = x;
  if (pad_h > 0 || pad_w > 0) padded = F::pad(x, F::PadFuncOptions({0, 0, 0, pad_w, 0, pad_h}));
  const int64_t Hp = H + pad_h, Wp = W + pad_w;
  auto windows = padded.view({B, Hp / window_size, window_size, Wp / window_size, window_size, C})
                     .permute({0, 1, 3, 2, 4, 5})
                     .contiguous()
                     .view({-1, window_size, window_size, C});
  return {windows, {Hp, Wp}};
}

torch::Tensor window_unpartition(const torch::Tensor& windows, int64_t window_size,
                                 std::pair<int64_t, int64_t> pad_hw,
                                 std::pair<int64_t, int64_t> hw) {
  const auto [Hp, Wp] = pad_hw;
  const auto [H, W] = hw;
  const int64_t B = windows.size(0) / (Hp * Wp / window_size / window_size);
  auto x = windows.view({B, Hp / window_size, Wp / window_size, window_size, window_size, -1})
               .permute({0, 1, 3, 2, 4, 5})
               .contiguous()
               .view({B, Hp, Wp, -1});
  if (Hp > H || Wp > W) x = x.slice(1, 0, H).slice(2, 0, W).contiguous();
  return x;
}

torch::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const torch::Tensor& rel_pos) {
  TORCH_CHECK(rel_pos.dim() == 2, "rel_pos must be (L, C), got ", rel_pos.sizes());
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  torch::Tensor resized = rel_pos;
  if (rel_pos.size(0) != max_rel_dist) {
    // (L, C) -> (1, C, L) -> linear resize -> (max_rel_dist, C)
    auto t = rel_pos.reshape({1, rel_pos.size(0), -1}).permute({0, 2, 1});
    t = F::interpolate(t, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{max_rel_dist})
                              .mode(torch::kLinear)
                              .align_corners(false));
    resized = t.reshape({-1, max_rel_dist}).permute({1, 0});
  }
  // Python: arange (int64) times a Python float gives float32 coordinates; the same
  // promotion happens here with a double Scalar.
  const double q_scale = std::max(static_cast<double>(k_size) / q_size, 1.0);
  const double k_scale = std::max(static_cast<double>(q_size) / k_size, 1.0);
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(rel_pos.device());
  auto q_coords = torch::arange(q_size, opts).unsqueeze(1) * q_scale;
  auto k_coords = torch::arange(k_size, opts).unsqueeze(0) * k_scale;
  auto relative = (q_coords - k_coords) + static_cast<double>(k_size - 1) * k_scale;
  return resized.index({relative.to(torch::kLong)});
}

torch::Tensor add_decomposed_rel_pos(const torch::Tensor& attn, const torch::Tensor& q,
                                     const torch::Tensor& rel_pos_h, const torch::Tensor& rel_pos_w,
                                     std::pair<int64_t, int64_t> q_size,
                                     std::pair<int64_t, int64_t> k_size) {
  const auto [q_h, q_w] = q_size;
  const auto [k_h, k_w] = k_size;
  auto Rh = get_rel_pos(q_h, k_h, rel_pos_h);  // (q_h, k_h, C)
  auto Rw = get_rel_pos(q_w, k_w, rel_pos_w);  // (q_w, k_w, C)
  const int64_t B = q.size(0), dim = q.size(2);
  auto r_q = q.reshape({B, q_h, q_w, dim});
  auto rel_h = torch::einsum("bhwc,hkc->bhwk", {r_q, Rh});  // (B, q_h, q_w, k_h)
  auto rel_w = torch::einsum("bhwc,wkc->bhwk", {r_q, Rw});  // (B, q_h, q_w, k_w)
  // (attn + rel_h) + rel_w as the reference, but without the two full-size temporaries
  // when the result does not need to be differentiable.
  auto a = attn.view({B, q_h, q_w, k_h, k_w});
  if (!torch::GradMode::is_enabled() || !attn.requires_grad()) {
    auto out = a + rel_h.unsqueeze(-1);
    out.add_(rel_w.unsqueeze(-2));
    return out.view({B, q_h * q_w, k_h * k_w});
  }
  return (a + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).view({B, q_h * q_w, k_h * k_w});
}

PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim) {
  proj = register_module(
      "proj", torch::nn::Conv2d(
                  torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  return proj->forward(x).permute({0, 2, 3, 1});
}

EncoderAttentionImpl::EncoderAttentionImpl(int64_t dim, int64_t num_heads, bool qkv_bias,
                                           bool use_rel_pos, std::pair<int64_t, int64_t> input_size)
    : num_heads(num_heads), use_rel_pos(use_rel_pos) {
  TORCH_CHECK(num_heads > 0 && dim % num_heads == 0, "encoder attention: num_heads ", num_heads,
              " must divide dim ", dim);
  const int64_t head_dim = dim / num_heads;
  scale = std::pow(static_cast<double>(head_dim), -0.5);
  qkv = register_module("qkv",
                        torch::nn::Linear(torch::nn::LinearOptions(dim, dim * 3).bias(qkv_bias)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  if (use_rel_pos) {
    rel_pos_h = register_parameter("rel_pos_h", torch::zeros({2 * input_size.first - 1, head_dim}));
    rel_pos_w =
        register_parameter("rel_pos_w", torch::zeros({2 * input_size.second - 1, head_dim}));
  }
}

namespace {

// The decomposed relative positions of all heads and query rows of q_grid (BH, qh, qw, c),
// two batched products per attention call instead of two einsums per block:
// rel_h[b, y, x, k] = q[b, y, x] . Rh[y, k] batched over y, rel_w[b, y, x, k] =
// q[b, y, x] . Rw[x, k] batched over x; (BH, qh, qw, kh) and (BH, qh, qw, kw) views.
std::pair<torch::Tensor, torch::Tensor> relative_positions(const torch::Tensor& q_grid,
                                                           const torch::Tensor& Rh,
                                                           const torch::Tensor& Rw) {
  const int64_t BH = q_grid.size(0), qh = q_grid.size(1), qw = q_grid.size(2);
  const int64_t c = q_grid.size(3), kh = Rh.size(1), kw = Rw.size(1);
  auto rel_h =
      torch::bmm(q_grid.permute({1, 0, 2, 3}).reshape({qh, BH * qw, c}), Rh.transpose(1, 2))
          .view({qh, BH, qw, kh})
          .permute({1, 0, 2, 3});
  auto rel_w =
      torch::bmm(q_grid.permute({2, 0, 1, 3}).reshape({qw, BH * qh, c}), Rw.transpose(1, 2))
          .view({qw, BH, qh, kw})
          .permute({1, 2, 0, 3});
  return {rel_h, rel_w};
}

// Attention of the (BH, N, c) heads over a qh x qw grid of queries, the keys of a kh x kw grid,
// blocked: (heads, query-grid rows) chunks whose (bh, rows * qw, N) score block stays within
// about attention_chunk_bytes() (so the scores, their bias and softmax stay in the cache
// instead of going to memory in four full passes, and vit_h's global attention does not
// allocate its 16 x 4096 x 4096 scores). Rh (qh, kh, c) and Rw (qw, kw, c) are the decomposed
// relative positions (undefined: none). Float32 on the CPU with `fused_softmax` (and without
// `sdpa` where it applies): the reference's products on each block ((q * scale) @ k^T, @ v)
// around softmax_rel_pos_ (attention_kernels.h: + rel_h, + rel_w and the softmax in one
// in-place pass per row), equal to the explicit path within fp32 rounding
// (tests/sam/sam_perf_test.cpp). Otherwise without `sdpa`: the reference's arithmetic on each
// block. LibTorch >= 2.1 with `sdpa`:
// at::scaled_dot_product_attention on each block with the relative-position bias as attn_mask
// (scale applied to q @ k^T instead of q: the same up to fp32 rounding;
// tests/sam/encoder_sdpa_test.cpp).
torch::Tensor blocked_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, double scale, const torch::Tensor& Rh,
                                const torch::Tensor& Rw, std::pair<int64_t, int64_t> q_size,
                                std::pair<int64_t, int64_t> k_size, int64_t budget,
                                [[maybe_unused]] bool sdpa, bool fused_softmax) {
  const int64_t BH = q.size(0), N = k.size(1), c = q.size(2);
  const auto [qh, qw] = q_size;
  const auto [kh, kw] = k_size;
  const bool rel = Rh.defined();
  const int64_t row_bytes = qw * N * static_cast<int64_t>(q.element_size());
  // Whole heads when one head's scores fit, else query-grid rows of one head.
  const int64_t rows = std::clamp<int64_t>(budget / std::max<int64_t>(row_bytes, 1), 1, qh);
  const int64_t heads = rows < qh ? 1 : std::max<int64_t>(1, budget / (row_bytes * qh));
  auto out = torch::empty({BH, qh * qw, v.size(2)}, q.options());
  // The CPU float32 kernel (attention_kernels.h): q scaled once, each block's scores into one
  // reused buffer, the bias and softmax in place on it, @ v straight into `out` (each block of
  // `out` is contiguous: one head, or whole heads).
  bool kernel = fused_softmax && q.device().is_cpu() && q.scalar_type() == torch::kFloat;
#if SAMDEBLUR_TORCH_AT_LEAST(2, 1)
  kernel = kernel && !sdpa;  // LibTorch's own fused kernel instead
#endif
  const auto q_grid = q.view({BH, qh, qw, c});
  torch::Tensor scaled_grid, scores;
  if (kernel) {
    scaled_grid = (q * scale).view({BH, qh, qw, c});
    scores = torch::empty({std::min(heads, BH) * rows * qw * N}, q.options());
  }
  const auto [rel_h_all, rel_w_all] =
      rel ? relative_positions(q_grid, Rh, Rw) : std::pair<torch::Tensor, torch::Tensor>{};
  for (int64_t b0 = 0; b0 < BH; b0 += heads) {
    const int64_t b1 = std::min(BH, b0 + heads), nb = b1 - b0;
    const auto kb = k.slice(0, b0, b1), vb = v.slice(0, b0, b1);
    for (int64_t r0 = 0; r0 < qh; r0 += rows) {
      const int64_t r1 = std::min(qh, r0 + rows), nq = (r1 - r0) * qw;
      torch::Tensor rel_h, rel_w;
      if (rel) {
        rel_h = rel_h_all.slice(0, b0, b1).slice(1, r0, r1);  // (nb, r, qw, kh)
        rel_w = rel_w_all.slice(0, b0, b1).slice(1, r0, r1);  // (nb, r, qw, kw)
      }
      // q * scale for the kernel (scaled once per call), q otherwise.
      const auto qb =
          (kernel ? scaled_grid : q_grid).slice(0, b0, b1).slice(1, r0, r1).reshape({nb, nq, c});
      torch::Tensor o;
#if SAMDEBLUR_TORCH_AT_LEAST(2, 1)
      if (sdpa) {
        // As (1, nb, nq, c): LibTorch's fused CPU kernel takes 4-D (B, heads, L, E) only;
        // 3-D inputs fall back to the unfused arithmetic (torch 2.11, one thread, a quarter
        // of a vit_h global-attention block: 3.2 s fused, 12.8 s 3-D, 11.1 s explicit; a
        // loaded machine, direction only).
        // (1, nb, nq, N) additive bias; reshape: the sum takes einsum's (possibly permuted)
        // layout, which view() refuses.
        std::optional<torch::Tensor> mask;
        if (rel) mask = (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape({1, nb, nq, kh * kw});
        o = at::scaled_dot_product_attention(qb.unsqueeze(0), kb.unsqueeze(0), vb.unsqueeze(0),
                                             mask, 0.0, false, scale)
                .squeeze(0);
      }
#endif
      if (!o.defined() && kernel) {
        auto attn = scores.narrow(0, 0, nb * nq * N).view({nb, nq, N});
        at::bmm_out(attn, qb, kb.transpose(-2, -1));
        softmax_rel_pos_(attn, rel_h, rel_w);
        auto dst = out.slice(0, b0, b1).slice(1, r0 * qw, r1 * qw);
        at::bmm_out(dst, attn, vb);
        continue;
      }
      if (!o.defined()) {
        auto attn = torch::matmul(qb * scale, kb.transpose(-2, -1));  // (nb, nq, N)
        if (rel) {
          auto a = attn.view({nb, r1 - r0, qw, kh, kw});
          a.add_(rel_h.unsqueeze(-1));
          a.add_(rel_w.unsqueeze(-2));
        }
        attn = attn.softmax(-1);
        o = torch::matmul(attn, vb);
      }
      out.slice(0, b0, b1).slice(1, r0 * qw, r1 * qw).copy_(o);
    }
  }
  return out;
}

}  // namespace

int64_t attention_chunk_bytes() {
  static const int64_t bytes = [] {
    const char* env = std::getenv("SAMDEBLUR_SAM_ATTN_CHUNK_KB");
    const int64_t kb = env ? std::atoll(env) : 0;
    return kb > 0 ? kb << 10 : kDefaultAttentionChunkBytes;
  }();
  return bytes;
}

torch::Tensor EncoderAttentionImpl::forward(const torch::Tensor& x) {
  RECORD_FUNCTION("sdb::sam_encoder_attention", std::vector<c10::IValue>());
  auto out = attend_qkv(fused_linear ? linear_rows(qkv, x) : qkv->forward(x));
  return fused_linear ? linear_rows(proj, out) : proj->forward(out);
}

torch::Tensor EncoderAttentionImpl::attend_qkv(const torch::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
  // qkv: (3, B, heads, H*W, head_dim) -> q, k, v: (B*heads, H*W, head_dim)
  auto qkv_out = x.reshape({B, H * W, 3, num_heads, -1}).permute({2, 0, 3, 1, 4});
  auto parts = qkv_out.reshape({3, B * num_heads, H * W, -1}).unbind(0);
  const auto &q = parts[0], &k = parts[1], &v = parts[2];
  torch::Tensor o;
  if (blocked && !(torch::GradMode::is_enabled() && x.requires_grad())) {
    torch::Tensor Rh, Rw;
    if (use_rel_pos) {
      Rh = get_rel_pos(H, H, rel_pos_h);
      Rw = get_rel_pos(W, W, rel_pos_w);
    }
    o = blocked_attention(q, k, v, scale, Rh, Rw, {H, W}, {H, W},
                          block_bytes > 0 ? block_bytes : attention_chunk_bytes(), sdpa,
                          fused_softmax);
  } else {
    // The reference's explicit path (also the differentiable one).
    auto attn = torch::matmul(q * scale, k.transpose(-2, -1));
    if (use_rel_pos) attn = add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, {H, W}, {H, W});
    attn = attn.softmax(-1);
    o = torch::matmul(attn, v);
  }
  return o.view({B, num_heads, H, W, -1}).permute({0, 2, 3, 1, 4}).reshape({B, H, W, -1});
}

EncoderBlockImpl::EncoderBlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, bool qkv_bias,
                                   bool use_rel_pos, int64_t window_size,
                                   std::pair<int64_t, int64_t> input_size)
    : window_size(window_size) {
  norm1 =
      register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  attn = register_module(
      "attn",
      EncoderAttention(dim, num_heads, qkv_bias, use_rel_pos,
                       window_size == 0 ? input_size : std::make_pair(window_size, window_size)));
  norm2 =
      register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  mlp = register_module("mlp",
                        MLPBlock(dim, static_cast<int64_t>(dim * mlp_ratio), Activation::gelu));
  mlp->fused_linear = true;
}

torch::Tensor EncoderBlockImpl::forward(const torch::Tensor& x) {
  auto h = norm1->forward(x);
  if (window_size > 0 && attn->fused_linear) {
    // qkv on the H x W tokens only, the windows padded with what the reference's zero padding
    // tokens project to, the qkv bias (the same values; vit's 64 x 64 grid in 14 x 14 windows
    // is 16 % padding); proj after unpartitioning, on the H x W tokens only.
    RECORD_FUNCTION("sdb::sam_encoder_attention", std::vector<c10::IValue>());
    const int64_t B = h.size(0), H = h.size(1), W = h.size(2);
    auto t = linear_rows(attn->qkv, h);  // (B, H, W, 3C)
    const int64_t Hp = (H + window_size - 1) / window_size * window_size;
    const int64_t Wp = (W + window_size - 1) / window_size * window_size;
    if (Hp != H || Wp != W) {
      auto padded = attn->qkv->bias.defined()
                        ? attn->qkv->bias.expand({B, Hp, Wp, t.size(3)}).clone()
                        : torch::zeros({B, Hp, Wp, t.size(3)}, t.options());
      padded.slice(1, 0, H).slice(2, 0, W).copy_(t);
      t = padded;
    }
    auto [windows, pad_hw] = window_partition(t, window_size);
    h = linear_rows(attn->proj,
                    window_unpartition(attn->attend_qkv(windows), window_size, pad_hw, {H, W}));
  } else if (window_size > 0) {
    const int64_t H = h.size(1), W = h.size(2);
    auto [windows, pad_hw] = window_partition(h, window_size);
    h = window_unpartition(attn->forward(windows), window_size, pad_hw, {H, W});
  } else {
    h = attn->forward(h);
  }
  // The residual sums in place on the fresh branch outputs (h + x == x + h exactly): no new
  // (B, H, W, D) allocation per sum.
  auto y = h.add_(x);
  return mlp->forward(norm2->forward(y)).add_(y);
}

ImageEncoderViTImpl::ImageEncoderViTImpl(const ImageEncoderOptions& o) : options(o) {
  TORCH_CHECK(o.patch_size > 0 && o.img_size % o.patch_size == 0, "image encoder: img_size ",
              o.img_size, " must be a multiple of patch_size ", o.patch_size);
  const int64_t grid = o.img_size / o.patch_size;
  patch_embed = register_module("patch_embed", PatchEmbed(o.patch_size, o.in_chans, o.embed_dim));
  if (o.use_abs_pos)
    pos_embed = register_parameter("pos_embed", torch::zeros({1, grid, grid, o.embed_dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth; ++i) {
    const bool global = std::find(o.global_attn_indexes.begin(), o.global_attn_indexes.end(), i) !=
                        o.global_attn_indexes.end();
    blocks->push_back(EncoderBlock(o.embed_dim, o.num_heads, o.mlp_ratio, o.qkv_bias, o.use_rel_pos,
                                   global ? 0 : o.window_size, std::make_pair(grid, grid)));
  }
  neck = register_module(
      "neck",
      torch::nn::Sequential(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(o.embed_dim, o.out_chans, 1).bias(false)),
          LayerNorm2d(o.out_chans),
          torch::nn::Conv2d(
              torch::nn::Conv2dOptions(o.out_chans, o.out_chans, 3).padding(1).bias(false)),
          LayerNorm2d(o.out_chans)));
}

torch::Tensor ImageEncoderViTImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.in_chans, "image encoder expects (B, ",
              options.in_chans, ", H, W), got ", input.sizes());
  auto x = patch_embed->forward(input);  // (B, Gh, Gw, D)
  if (pos_embed.defined()) {
    if (x.size(1) == pos_embed.size(1) && x.size(2) == pos_embed.size(2)) {
      x = x + pos_embed;
    } else {
      auto pe = F::interpolate(pos_embed.permute({0, 3, 1, 2}),
                               F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{x.size(1), x.size(2)})
                                   .mode(torch::kBicubic)
                                   .align_corners(false));
      x = x + pe.permute({0, 2, 3, 1});
    }
  }
  for (const auto& blk : *blocks) x = blk->as<EncoderBlockImpl>()->forward(x);
  return neck->forward(x.permute({0, 3, 1, 2}));
}

}  // namespace samdeblur::sam
