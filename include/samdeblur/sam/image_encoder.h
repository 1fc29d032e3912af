#pragma once
// ViT image encoder of SAM (segment_anything/modeling/image_encoder.py, itself ViTDet).
// Keys: patch_embed.proj, pos_embed (1, G, G, D), blocks.<i>.{norm1, attn.{qkv, proj,
// rel_pos_h, rel_pos_w}, norm2, mlp.{lin1, lin2}}, neck.{0, 1, 2, 3}.
#include <torch/torch.h>

#include <utility>
#include <vector>

#include "samdeblur/sam/common.h"

namespace samdeblur::sam {

struct ImageEncoderOptions {
  int64_t img_size = 1024;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  int64_t out_chans = 256;
  bool qkv_bias = true;
  bool use_abs_pos = true;
  bool use_rel_pos = true;
  int64_t window_size = 14;  // 0 = global attention everywhere
  std::vector<int64_t> global_attn_indexes = {2, 5, 8, 11};
};

// (B, H, W, C) -> ((B * nW, ws, ws, C), (Hp, Wp)); pads bottom/right with zeros to a
// multiple of ws.
std::pair<torch::Tensor, std::pair<int64_t, int64_t>> window_partition(const torch::Tensor& x,
                                                                       int64_t window_size);
// Inverse of window_partition, cropping the padding: -> (B, H, W, C).
torch::Tensor window_unpartition(const torch::Tensor& windows, int64_t window_size,
                                 std::pair<int64_t, int64_t> pad_hw,
                                 std::pair<int64_t, int64_t> hw);
// Relative positional embeddings (q_size, k_size, C) picked from rel_pos (L, C); rel_pos is
// first linearly resized (F.interpolate mode="linear", align_corners=False) to
// 2 * max(q, k) - 1 entries when L differs, as image_encoder.py get_rel_pos.
torch::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const torch::Tensor& rel_pos);
// attn (B, qh*qw, kh*kw) + decomposed rel-pos terms of q (B, qh*qw, C) (MViTv2).
torch::Tensor add_decomposed_rel_pos(const torch::Tensor& attn, const torch::Tensor& q,
                                     const torch::Tensor& rel_pos_h, const torch::Tensor& rel_pos_w,
                                     std::pair<int64_t, int64_t> q_size,
                                     std::pair<int64_t, int64_t> k_size);

// Score-block budget of the encoder's blocked attention (EncoderAttentionImpl::blocked):
// kDefaultAttentionChunkBytes, or SAMDEBLUR_SAM_ATTN_CHUNK_KB (KiB, read once) for tuning.
// 4 MiB: vit_b's global attention in blocks of 4 query rows (256 queries x 4096 keys), which
// packs each head's keys 16 instead of 64 times (1 MiB: 1 row; interleaved A/B, README).
constexpr int64_t kDefaultAttentionChunkBytes = int64_t{4} << 20;
int64_t attention_chunk_bytes();

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim);
  torch::Tensor forward(const torch::Tensor& x);  // (B, 3, H, W) -> (B, H/p, W/p, D)
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Multi-head self-attention over a (B, H, W, D) grid with optional decomposed relative
// positions; rel_pos_h/w are (2 * input_size - 1, head_dim).
class EncoderAttentionImpl : public torch::nn::Module {
 public:
  EncoderAttentionImpl(int64_t dim, int64_t num_heads, bool qkv_bias, bool use_rel_pos,
                       std::pair<int64_t, int64_t> input_size);
  torch::Tensor forward(const torch::Tensor& x);
  // The attention between qkv and proj: qkv(x) (B, H, W, 3 * dim) -> (B, H, W, dim).
  torch::Tensor attend_qkv(const torch::Tensor& qkv_x);
  int64_t num_heads;
  double scale;
  bool use_rel_pos;
  // Blocked attention (deviation from the reference's explicit path, same values within fp32
  // rounding): the scores are computed, biased, normalised and applied per block of heads and
  // query rows, through at::scaled_dot_product_attention on LibTorch >= 2.1. Used when no
  // gradient is needed; false: the explicit path of the reference.
  bool blocked = true;
  int64_t block_bytes = 0;  // score-block budget; 0: attention_chunk_bytes()
  // Blocked path on LibTorch >= 2.1: true, each block through scaled_dot_product_attention;
  // false, the explicit arithmetic per block (the only one on LibTorch 1.13).
  bool sdpa = true;
  // Blocked path on the CPU in float32 (where sdpa does not run): true, the relative-position
  // bias and the softmax of each score block in one in-place pass (softmax_rel_pos_,
  // attention_kernels.h; within fp32 rounding); false, the reference's arithmetic per block.
  bool fused_softmax = true;
  // qkv and proj through linear_rows (within fp32 rounding); false: the reference's.
  bool fused_linear = true;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor rel_pos_h, rel_pos_w;
};
TORCH_MODULE(EncoderAttention);

// Pre-norm ViT block with window attention (window_size > 0) or global attention. Its MLP
// runs with fused_linear (MLPBlockImpl); attn and mlp fused_linear false give the reference's
// linear layers. With attn->fused_linear, window attention projects qkv and proj on the
// H x W tokens only and pads the windows with the qkv bias (what the reference's zero
// padding projects to): equal within fp32 rounding.
class EncoderBlockImpl : public torch::nn::Module {
 public:
  EncoderBlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, bool qkv_bias,
                   bool use_rel_pos, int64_t window_size, std::pair<int64_t, int64_t> input_size);
  torch::Tensor forward(const torch::Tensor& x);  // (B, H, W, D) -> same
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  EncoderAttention attn{nullptr};
  MLPBlock mlp{nullptr};
  int64_t window_size;
};
TORCH_MODULE(EncoderBlock);

class ImageEncoderViTImpl : public torch::nn::Module {
 public:
  explicit ImageEncoderViTImpl(const ImageEncoderOptions& options);
  // (B, 3, img_size, img_size) normalised -> (B, out_chans, img_size/p, img_size/p).
  // Extension: when the patch grid differs from pos_embed's, pos_embed is resized
  // bicubically (align_corners=False) as ViTDet's get_abs_pos does; the official SAM
  // code only supports its own img_size.
  torch::Tensor forward(const torch::Tensor& x);

  ImageEncoderOptions options;
  PatchEmbed patch_embed{nullptr};
  torch::Tensor pos_embed;  // (1, G, G, D), undefined when !use_abs_pos
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential neck{nullptr};
};
TORCH_MODULE(ImageEncoderViT);

}  // namespace samdeblur::sam
