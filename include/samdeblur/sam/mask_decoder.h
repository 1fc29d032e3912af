#pragma once
// Mask decoder of SAM (segment_anything/modeling/mask_decoder.py).
// Keys: transformer.*, iou_token.weight (1, D), mask_tokens.weight (M+1, D),
// output_upscaling.{0, 1, 3}, output_hypernetworks_mlps.<i>.layers.{0,1,2},
// iou_prediction_head.layers.<j>.
#include <torch/torch.h>

#include <utility>

#include "samdeblur/sam/common.h"
#include "samdeblur/sam/transformer.h"

namespace samdeblur::sam {

// Plain MLP: ReLU after every layer but the last (mask_decoder.py MLP). Keys: layers.<i>.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers,
          bool sigmoid_output = false);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList layers{nullptr};
  bool sigmoid_output;
};
TORCH_MODULE(MLP);

struct MaskDecoderOptions {
  int64_t transformer_dim = 256;
  int64_t transformer_depth = 2;
  int64_t transformer_num_heads = 8;
  int64_t transformer_mlp_dim = 2048;
  int64_t num_multimask_outputs = 3;
  int64_t iou_head_depth = 3;
  int64_t iou_head_hidden_dim = 256;
};

class MaskDecoderImpl : public torch::nn::Module {
 public:
  explicit MaskDecoderImpl(const MaskDecoderOptions& options);
  // image_embeddings (Bi, D, h, w) with Bi = 1 (repeated per prompt) or B; image_pe (1, D, h, w);
  // sparse (B, N, D); dense (B, D, h, w).
  // -> masks (B, C, 4h, 4w), iou (B, C) with C = num_multimask_outputs (mask tokens 1..) when
  // multimask_output, else 1 (mask token 0).
  // image_cache: the prompt-independent projections of the first transformer layer
  // (TwoWayImageCache), used and filled when the prompts share the image tokens (Bi = 1 and a
  // dense embedding broadcast over the batch, i.e. no mask input). It belongs to one image
  // embedding: the caller clears it when the embedding changes. May be null.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& image_embeddings,
                                                  const torch::Tensor& image_pe,
                                                  const torch::Tensor& sparse_prompt_embeddings,
                                                  const torch::Tensor& dense_prompt_embeddings,
                                                  bool multimask_output,
                                                  TwoWayImageCache* image_cache = nullptr);
  // All num_mask_tokens outputs: masks (B, M+1, 4h, 4w), iou (B, M+1).
  std::pair<torch::Tensor, torch::Tensor> predict_masks(
      const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
      const torch::Tensor& sparse_prompt_embeddings, const torch::Tensor& dense_prompt_embeddings,
      TwoWayImageCache* image_cache = nullptr);

  // Execution of forward (deviation from the reference, same weights): with `fast` (the
  // default) the prompts run in groups of `prompt_group` whose activations stay in the cache
  // (instead of B x 4096 tokens x 256 channels per elementwise pass), the transformer runs
  // TwoWayAttentionBlockImpl::forward_fast (image-side projections folded into the tokens'
  // side), and the output upscaling runs token by token (upscale_tokens) for the returned mask
  // tokens only. Every step is per prompt; the masks and IoUs equal the plain path's within
  // fp32 rounding (tests: SamPerf.*Fast*). fast = false: the reference's batch-wide
  // arithmetic, the exact path. SAMDEBLUR_SAM_DECODER=plain or GROUP:CHUNK (benchmarks) sets
  // these at construction.
  bool fast = true;
  int64_t prompt_group = 2;
  int64_t upscale_chunk_tokens = 512;  // image tokens per upscaling block (cache-sized)

  // The output upscaling and the mask product, token-major: keys (B, h*w, D) (the transformer's
  // image tokens), hyper_in (B, C, D/8) -> masks (B, C, 4h, 4w). Each ConvTranspose2d with
  // kernel = stride = 2 is a matrix product (tokens, Cin) x (Cin, 2*2*Cout) whose rows are the
  // four output pixels of each input pixel, LayerNorm2d a layer_norm over those rows' channels;
  // a block of upscale_chunk_tokens input tokens is taken through both products, the GELUs and
  // the mask product while it is in the cache, and the (h, w, 2, 2, 2, 2) pixel order is put
  // back into (4h, 4w) at the end. Equal to output_upscaling + matmul within fp32 rounding.
  torch::Tensor upscale_tokens(const torch::Tensor& keys, const torch::Tensor& hyper_in, int64_t h,
                               int64_t w);

  MaskDecoderOptions options;
  int64_t num_mask_tokens;
  TwoWayTransformer transformer{nullptr};
  torch::nn::Embedding iou_token{nullptr}, mask_tokens{nullptr};
  torch::nn::Sequential output_upscaling{nullptr};
  torch::nn::ModuleList output_hypernetworks_mlps{nullptr};
  MLP iou_prediction_head{nullptr};

 private:
  // The fast forward: masks (B, count, 4h, 4w) of mask tokens first .. first + count - 1 and
  // iou (B, M+1).
  std::pair<torch::Tensor, torch::Tensor> predict_masks_fast(
      const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
      const torch::Tensor& sparse_prompt_embeddings, const torch::Tensor& dense_prompt_embeddings,
      int64_t first, int64_t count, TwoWayImageCache* image_cache);
};
TORCH_MODULE(MaskDecoder);

}  // namespace samdeblur::sam
