#pragma once
// Prompt encoder of SAM (segment_anything/modeling/prompt_encoder.py).
// Keys: pe_layer.positional_encoding_gaussian_matrix (2, D/2) [buffer],
// point_embeddings.{0..3}.weight (1, D), not_a_point_embed.weight, mask_downscaling.{0,1,3,4,6},
// no_mask_embed.weight.
#include <torch/torch.h>

#include <optional>
#include <utility>

#include "samdeblur/sam/common.h"

namespace samdeblur::sam {

// Random Fourier features of (x, y) positions (PositionEmbeddingRandom).
class PositionEmbeddingRandomImpl : public torch::nn::Module {
 public:
  explicit PositionEmbeddingRandomImpl(int64_t num_pos_feats = 64, double scale = 1.0);
  // Dense encoding of an h x w grid of pixel centres: (2 * num_pos_feats, h, w).
  torch::Tensor forward(int64_t h, int64_t w);
  // coords (B, N, 2) as (x, y) in pixels of an image of size (H, W) -> (B, N, 2 * num_pos_feats)
  // float32. The division by the image size happens in the dtype of coords (float64 inputs
  // stay float64 until the encoding, as in the reference).
  torch::Tensor forward_with_coords(const torch::Tensor& coords,
                                    std::pair<int64_t, int64_t> image_size);
  torch::Tensor pe_encoding(const torch::Tensor& coords01);  // coords in [0, 1]^2, (..., 2)
  torch::Tensor positional_encoding_gaussian_matrix;         // (2, num_pos_feats), N(0, scale^2)
};
TORCH_MODULE(PositionEmbeddingRandom);

class PromptEncoderImpl : public torch::nn::Module {
 public:
  // image_embedding_size (H, W) of the encoder output; input_image_size (H, W) of the padded
  // encoder input; mask_in_chans hidden channels of the mask branch (16 in the official models).
  PromptEncoderImpl(int64_t embed_dim, std::pair<int64_t, int64_t> image_embedding_size,
                    std::pair<int64_t, int64_t> input_image_size, int64_t mask_in_chans);

  // points: coords (B, N, 2) (x, y) in the input frame + labels (B, N) (1 fg, 0 bg, -1 pad);
  // boxes (B, 4) xyxy; masks (B, 1, 4*He, 4*We) low-res logits.
  // Returns sparse (B, N', D) and dense (B, D, He, We) embeddings. A padding point (label -1)
  // is appended to the points when no boxes are given.
  std::pair<torch::Tensor, torch::Tensor> forward(
      const std::optional<std::pair<torch::Tensor, torch::Tensor>>& points,
      const std::optional<torch::Tensor>& boxes, const std::optional<torch::Tensor>& masks);
  torch::Tensor get_dense_pe();  // (1, D, He, We)

  torch::Tensor embed_points(const torch::Tensor& points, const torch::Tensor& labels, bool pad);
  torch::Tensor embed_boxes(const torch::Tensor& boxes);
  torch::Tensor embed_masks(const torch::Tensor& masks);

  int64_t embed_dim;
  std::pair<int64_t, int64_t> image_embedding_size, input_image_size, mask_input_size;
  PositionEmbeddingRandom pe_layer{nullptr};
  torch::nn::ModuleList point_embeddings{
      nullptr};  // 4 x Embedding(1, D): neg, pos, box corner 1, 2
  torch::nn::Embedding not_a_point_embed{nullptr}, no_mask_embed{nullptr};
  torch::nn::Sequential mask_downscaling{nullptr};
};
TORCH_MODULE(PromptEncoder);

}  // namespace samdeblur::sam
