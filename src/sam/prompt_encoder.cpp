// Mirrors segment_anything/modeling/prompt_encoder.py (PromptEncoder, PositionEmbeddingRandom).
#include "samdeblur/sam/prompt_encoder.h"

#include <cmath>

namespace samdeblur::sam {

PositionEmbeddingRandomImpl::PositionEmbeddingRandomImpl(int64_t num_pos_feats, double scale) {
  if (scale <= 0.0) scale = 1.0;
  positional_encoding_gaussian_matrix = register_buffer("positional_encoding_gaussian_matrix",
                                                        torch::randn({2, num_pos_feats}) * scale);
}

torch::Tensor PositionEmbeddingRandomImpl::pe_encoding(const torch::Tensor& coords01) {
  // The encoding is computed in float32 (the reference's dtype) and cast to the buffer's
  // dtype, so a half-precision model does not mix dtypes in the matmul.
  const auto& g = positional_encoding_gaussian_matrix;
  auto c = coords01.to(torch::kFloat) * 2 - 1;
  c = torch::matmul(c, g.to(torch::kFloat));
  c = c * (2.0 * M_PI);
  return torch::cat({torch::sin(c), torch::cos(c)}, -1).to(g.scalar_type());
}

torch::Tensor PositionEmbeddingRandomImpl::forward(int64_t h, int64_t w) {
  auto grid = torch::ones({h, w}, torch::TensorOptions()
                                      .dtype(torch::kFloat)
                                      .device(positional_encoding_gaussian_matrix.device()));
  auto y_embed = (grid.cumsum(0) - 0.5) / static_cast<double>(h);
  auto x_embed = (grid.cumsum(1) - 0.5) / static_cast<double>(w);
  return pe_encoding(torch::stack({x_embed, y_embed}, -1)).permute({2, 0, 1});  // (C, h, w)
}

torch::Tensor PositionEmbeddingRandomImpl::forward_with_coords(
    const torch::Tensor& coords, std::pair<int64_t, int64_t> image_size) {
  TORCH_CHECK(coords.dim() == 3 && coords.size(2) == 2, "point coords must be (B, N, 2), got ",
              coords.sizes());
  auto x = coords.select(2, 0) / static_cast<double>(image_size.second);
  auto y = coords.select(2, 1) / static_cast<double>(image_size.first);
  return pe_encoding(torch::stack({x, y}, -1));
}

PromptEncoderImpl::PromptEncoderImpl(int64_t embed_dim,
                                     std::pair<int64_t, int64_t> image_embedding_size,
                                     std::pair<int64_t, int64_t> input_image_size,
                                     int64_t mask_in_chans)
    : embed_dim(embed_dim),
      image_embedding_size(image_embedding_size),
      input_image_size(input_image_size),
      mask_input_size(4 * image_embedding_size.first, 4 * image_embedding_size.second) {
  TORCH_CHECK(embed_dim % 2 == 0 && mask_in_chans % 4 == 0, "prompt encoder: embed_dim ", embed_dim,
              " must be even and mask_in_chans ", mask_in_chans, " a multiple of 4");
  pe_layer = register_module("pe_layer", PositionEmbeddingRandom(embed_dim / 2));
  point_embeddings = register_module("point_embeddings", torch::nn::ModuleList());
  for (int i = 0; i < 4; ++i) point_embeddings->push_back(torch::nn::Embedding(1, embed_dim));
  not_a_point_embed = register_module("not_a_point_embed", torch::nn::Embedding(1, embed_dim));
  using torch::nn::Conv2dOptions;
  mask_downscaling = register_module(
      "mask_downscaling",
      torch::nn::Sequential(
          torch::nn::Conv2d(Conv2dOptions(1, mask_in_chans / 4, 2).stride(2)),
          LayerNorm2d(mask_in_chans / 4), torch::nn::GELU(),
          torch::nn::Conv2d(Conv2dOptions(mask_in_chans / 4, mask_in_chans, 2).stride(2)),
          LayerNorm2d(mask_in_chans), torch::nn::GELU(),
          torch::nn::Conv2d(Conv2dOptions(mask_in_chans, embed_dim, 1))));
  no_mask_embed = register_module("no_mask_embed", torch::nn::Embedding(1, embed_dim));
}

torch::Tensor PromptEncoderImpl::get_dense_pe() {
  return pe_layer->forward(image_embedding_size.first, image_embedding_size.second).unsqueeze(0);
}

torch::Tensor PromptEncoderImpl::embed_points(const torch::Tensor& points_in,
                                              const torch::Tensor& labels_in, bool pad) {
  TORCH_CHECK(labels_in.dim() == 2 && labels_in.size(0) == points_in.size(0) &&
                  labels_in.size(1) == points_in.size(1),
              "point labels must be (B, N) matching coords ", points_in.sizes(), ", got ",
              labels_in.sizes());
  auto points = points_in + 0.5;  // pixel centres
  auto labels = labels_in;
  if (pad) {
    points = torch::cat({points, torch::zeros({points.size(0), 1, 2}, points.options())}, 1);
    labels = torch::cat({labels, torch::full({labels.size(0), 1}, -1, labels.options())}, 1);
  }
  auto pe = pe_layer->forward_with_coords(points, input_image_size);  // (B, N, D)
  auto lab = labels.unsqueeze(-1);
  auto weight = [&](int i) { return point_embeddings[i]->as<torch::nn::EmbeddingImpl>()->weight; };
  // Equal to the reference's masked assignments: -1 -> not_a_point, 0 -> pe + neg, 1 -> pe + pos.
  pe = torch::where(lab == -1, not_a_point_embed->weight.to(pe.scalar_type()), pe);
  pe = torch::where(lab == 0, pe + weight(0), pe);
  pe = torch::where(lab == 1, pe + weight(1), pe);
  return pe;
}

torch::Tensor PromptEncoderImpl::embed_boxes(const torch::Tensor& boxes) {
  auto coords = (boxes + 0.5).reshape({-1, 2, 2});
  auto corners = pe_layer->forward_with_coords(coords, input_image_size);  // (B, 2, D)
  auto weight = [&](int i) { return point_embeddings[i]->as<torch::nn::EmbeddingImpl>()->weight; };
  return torch::stack(
      {corners.select(1, 0) + weight(2).squeeze(0), corners.select(1, 1) + weight(3).squeeze(0)},
      1);
}

torch::Tensor PromptEncoderImpl::embed_masks(const torch::Tensor& masks) {
  TORCH_CHECK(masks.dim() == 4 && masks.size(1) == 1, "mask inputs must be (B, 1, H, W), got ",
              masks.sizes());
  return mask_downscaling->forward(masks);
}

std::pair<torch::Tensor, torch::Tensor> PromptEncoderImpl::forward(
    const std::optional<std::pair<torch::Tensor, torch::Tensor>>& points,
    const std::optional<torch::Tensor>& boxes, const std::optional<torch::Tensor>& masks) {
  int64_t bs = 1;
  if (points) {
    bs = points->first.size(0);
  } else if (boxes) {
    bs = boxes->size(0);
  } else if (masks) {
    bs = masks->size(0);
  }
  const auto& w = no_mask_embed->weight;
  auto sparse = torch::empty({bs, 0, embed_dim}, w.options());
  if (points)
    sparse =
        torch::cat({sparse, embed_points(points->first, points->second, !boxes.has_value())}, 1);
  if (boxes) sparse = torch::cat({sparse, embed_boxes(*boxes)}, 1);
  torch::Tensor dense;
  if (masks) {
    dense = embed_masks(*masks);
  } else {
    dense = w.reshape({1, -1, 1, 1})
                .expand({bs, -1, image_embedding_size.first, image_embedding_size.second});
  }
  return {sparse, dense};
}

}  // namespace samdeblur::sam
