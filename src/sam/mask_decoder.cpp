// Mirrors segment_anything/modeling/mask_decoder.py (MaskDecoder, MLP).
#include "samdeblur/sam/mask_decoder.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

namespace samdeblur::sam {

MLPImpl::MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers,
                 bool sigmoid_output)
    : sigmoid_output(sigmoid_output) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) {
    const int64_t in = i == 0 ? input_dim : hidden_dim;
    const int64_t out = i == num_layers - 1 ? output_dim : hidden_dim;
    layers->push_back(torch::nn::Linear(in, out));
  }
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  const auto n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->as<torch::nn::LinearImpl>()->forward(x);
    if (i + 1 < n) x = torch::relu(x);
  }
  return sigmoid_output ? torch::sigmoid(x) : x;
}

MaskDecoderImpl::MaskDecoderImpl(const MaskDecoderOptions& o)
    : options(o), num_mask_tokens(o.num_multimask_outputs + 1) {
  const int64_t d = o.transformer_dim;
  TORCH_CHECK(d % 8 == 0, "mask decoder: transformer_dim ", d, " must be a multiple of 8");
  transformer = register_module(
      "transformer",
      TwoWayTransformer(o.transformer_depth, d, o.transformer_num_heads, o.transformer_mlp_dim, 2));
  iou_token = register_module("iou_token", torch::nn::Embedding(1, d));
  mask_tokens = register_module("mask_tokens", torch::nn::Embedding(num_mask_tokens, d));
  using torch::nn::ConvTranspose2dOptions;
  output_upscaling = register_module(
      "output_upscaling",
      torch::nn::Sequential(
          torch::nn::ConvTranspose2d(ConvTranspose2dOptions(d, d / 4, 2).stride(2)),
          LayerNorm2d(d / 4), torch::nn::GELU(),
          torch::nn::ConvTranspose2d(ConvTranspose2dOptions(d / 4, d / 8, 2).stride(2)),
          torch::nn::GELU()));
  output_hypernetworks_mlps = register_module("output_hypernetworks_mlps", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_mask_tokens; ++i)
    output_hypernetworks_mlps->push_back(MLP(d, d, d / 8, 3));
  iou_prediction_head = register_module(
      "iou_prediction_head", MLP(d, o.iou_head_hidden_dim, num_mask_tokens, o.iou_head_depth));
  // Benchmarks (A/B in one build): SAMDEBLUR_SAM_DECODER=plain, or GROUP:CHUNK for the fast
  // execution's prompt_group and upscale_chunk_tokens.
  if (const char* env = std::getenv("SAMDEBLUR_SAM_DECODER")) {
    const std::string v = env;
    const auto colon = v.find(':');
    if (v == "plain") {
      fast = false;
    } else if (colon != std::string::npos) {
      prompt_group = std::max<int64_t>(1, std::atoll(v.substr(0, colon).c_str()));
      upscale_chunk_tokens = std::max<int64_t>(1, std::atoll(v.substr(colon + 1).c_str()));
    }
  }
}

std::pair<torch::Tensor, torch::Tensor> MaskDecoderImpl::forward(
    const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
    const torch::Tensor& sparse_prompt_embeddings, const torch::Tensor& dense_prompt_embeddings,
    bool multimask_output, TwoWayImageCache* image_cache) {
  const int64_t start = multimask_output ? 1 : 0;
  const int64_t end = multimask_output ? num_mask_tokens : 1;
  if (fast && !transformer->layers->is_empty()) {
    auto [masks, iou] =
        predict_masks_fast(image_embeddings, image_pe, sparse_prompt_embeddings,
                           dense_prompt_embeddings, start, end - start, image_cache);
    return {masks, iou.slice(1, start, end)};
  }
  auto [masks, iou] = predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                    dense_prompt_embeddings, image_cache);
  return {masks.slice(1, start, end), iou.slice(1, start, end)};
}

std::pair<torch::Tensor, torch::Tensor> MaskDecoderImpl::predict_masks(
    const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
    const torch::Tensor& sparse_prompt_embeddings, const torch::Tensor& dense_prompt_embeddings,
    TwoWayImageCache* image_cache) {
  const int64_t B = sparse_prompt_embeddings.size(0);
  TORCH_CHECK(image_embeddings.dim() == 4 && image_embeddings.size(1) == options.transformer_dim,
              "mask decoder: image embeddings must be (1, ", options.transformer_dim,
              ", h, w), got ", image_embeddings.sizes());
  auto output_tokens =
      torch::cat({iou_token->weight, mask_tokens->weight}, 0).unsqueeze(0).expand({B, -1, -1});
  auto tokens = torch::cat({output_tokens, sparse_prompt_embeddings}, 1);
  // The reference repeat_interleaves the embedding per prompt; a batch-1 embedding is
  // broadcast instead (same values, no B copies of the embedding). When the dense embedding is
  // the same for every prompt too (no mask input: an expanded no_mask_embed), the image tokens
  // stay batch 1 and the transformer shares their projections (TwoWayImageCache).
  const auto& dense = dense_prompt_embeddings;
  const bool shared_dense = dense.size(0) == 1 || dense.stride(0) == 0;
  torch::Tensor src;
  TwoWayImageCache* cache = nullptr;
  if (image_embeddings.size(0) == 1 && shared_dense && !transformer->layers->is_empty()) {
    src = image_embeddings + dense.narrow(0, 0, 1);  // (1, D, h, w)
    cache = image_cache;
  } else if (image_embeddings.size(0) == 1) {
    src = image_embeddings + dense;
    if (src.size(0) != B) src = src.expand({B, -1, -1, -1});
  } else {
    src = torch::repeat_interleave(image_embeddings, B, 0) + dense;
  }
  auto pos_src = image_pe.size(0) == 1 ? image_pe : torch::repeat_interleave(image_pe, B, 0);
  const int64_t c = src.size(1), h = src.size(2), w = src.size(3);

  auto [hs, keys] = transformer->forward(src, pos_src, tokens, cache);
  const int64_t b = keys.size(0);
  auto iou_token_out = hs.select(1, 0);
  auto mask_tokens_out = hs.slice(1, 1, 1 + num_mask_tokens);

  // output_upscaling may run in another dtype than the rest (float32 in a bf16 model on the
  // CPU, see make_predictor); for a single-dtype model both casts are no-ops.
  const auto up_dtype = output_upscaling->parameters().front().scalar_type();
  auto upscaled =
      output_upscaling->forward(keys.transpose(1, 2).reshape({b, c, h, w}).to(up_dtype));
  std::vector<torch::Tensor> hyper_in_list;
  for (int64_t i = 0; i < num_mask_tokens; ++i)
    hyper_in_list.push_back(
        output_hypernetworks_mlps[i]->as<MLPImpl>()->forward(mask_tokens_out.select(1, i)));
  auto hyper_in = torch::stack(hyper_in_list, 1);  // (b, M+1, c/8)
  const int64_t uc = upscaled.size(1), uh = upscaled.size(2), uw = upscaled.size(3);
  auto masks =
      torch::matmul(hyper_in.to(up_dtype), upscaled.reshape({upscaled.size(0), uc, uh * uw}))
          .view({upscaled.size(0), -1, uh, uw});
  auto iou_pred = iou_prediction_head->forward(iou_token_out);
  return {masks, iou_pred};
}

std::pair<torch::Tensor, torch::Tensor> MaskDecoderImpl::predict_masks_fast(
    const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
    const torch::Tensor& sparse_prompt_embeddings, const torch::Tensor& dense_prompt_embeddings,
    int64_t first, int64_t count, TwoWayImageCache* image_cache) {
  const int64_t B = sparse_prompt_embeddings.size(0);
  const int64_t d = options.transformer_dim;
  TORCH_CHECK(image_embeddings.dim() == 4 && image_embeddings.size(1) == d &&
                  (image_embeddings.size(0) == 1 || image_embeddings.size(0) == B),
              "mask decoder: image embeddings must be (1 or ", B, ", ", d, ", h, w), got ",
              image_embeddings.sizes());
  TORCH_CHECK(prompt_group > 0 && upscale_chunk_tokens > 0,
              "mask decoder: prompt_group and upscale_chunk_tokens must be positive, got ",
              prompt_group, " and ", upscale_chunk_tokens);
  const int64_t h = image_embeddings.size(2), w = image_embeddings.size(3);
  auto output_tokens =
      torch::cat({iou_token->weight, mask_tokens->weight}, 0).unsqueeze(0).expand({B, -1, -1});
  const auto tokens = torch::cat({output_tokens, sparse_prompt_embeddings}, 1);
  // Image tokens, token-major and contiguous: (1, h*w, D) when every prompt sees the same ones
  // (batch-1 embedding and dense embedding, e.g. no mask input), else (B, h*w, D).
  const auto& dense = dense_prompt_embeddings;
  const bool shared = image_embeddings.size(0) == 1 && (dense.size(0) == 1 || dense.stride(0) == 0);
  auto src = shared ? image_embeddings + dense.narrow(0, 0, 1) : image_embeddings + dense;
  if (src.size(0) != B && !shared) src = src.expand({B, -1, -1, -1});
  const auto keys = src.flatten(2).transpose(1, 2).contiguous();
  const auto key_pe = image_pe.flatten(2).transpose(1, 2).contiguous();
  // The image-side projections of the first layer: the caller's per-image cache where the
  // tokens are prompt-independent (B > 1, as the plain path decides), else this call's.
  TwoWayImageCache call_cache;
  TwoWayImageCache* cache = !shared ? nullptr : B > 1 && image_cache ? image_cache : &call_cache;

  const auto up_dtype = output_upscaling->parameters().front().scalar_type();
  auto masks = torch::empty({B, count, 4 * h, 4 * w}, keys.options().dtype(up_dtype));
  std::vector<torch::Tensor> iou;
  for (int64_t g0 = 0; g0 < B; g0 += prompt_group) {
    const int64_t n = std::min(prompt_group, B - g0);
    auto part = [&](const torch::Tensor& t) { return t.size(0) == 1 ? t : t.narrow(0, g0, n); };
    torch::Tensor hs, keys_out;
    {
      RECORD_FUNCTION("sdb::sam_decoder_transformer", std::vector<c10::IValue>());
      std::tie(hs, keys_out) = transformer->forward_tokens(part(keys), part(key_pe),
                                                           tokens.narrow(0, g0, n), cache, true);
    }
    // Hypernetworks, upscaling, mask product, IoU head.
    RECORD_FUNCTION("sdb::sam_decoder_upscale", std::vector<c10::IValue>());
    std::vector<torch::Tensor> hyper;
    for (int64_t i = first; i < first + count; ++i)
      hyper.push_back(output_hypernetworks_mlps[i]->as<MLPImpl>()->forward(hs.select(1, 1 + i)));
    masks.narrow(0, g0, n).copy_(upscale_tokens(keys_out, torch::stack(hyper, 1), h, w));
    iou.push_back(iou_prediction_head->forward(hs.select(1, 0)));
  }
  return {masks, torch::cat(iou, 0)};
}

torch::Tensor MaskDecoderImpl::upscale_tokens(const torch::Tensor& keys,
                                              const torch::Tensor& hyper_in, int64_t h, int64_t w) {
  auto& up1 = *output_upscaling->ptr(0)->as<torch::nn::ConvTranspose2dImpl>();
  auto& norm = *output_upscaling->ptr(1)->as<LayerNorm2dImpl>();
  auto& up2 = *output_upscaling->ptr(3)->as<torch::nn::ConvTranspose2dImpl>();
  const auto dtype = up1.weight.scalar_type();
  const int64_t B = keys.size(0), c = keys.size(2), count = hyper_in.size(1);
  const int64_t c1 = up1.weight.size(1), c2 = up2.weight.size(1);
  TORCH_CHECK(
      keys.dim() == 3 && keys.size(1) == h * w && hyper_in.size(0) == B && hyper_in.size(2) == c2,
      "upscale_tokens: expected keys (B, ", h * w, ", C) and hyper_in (B, M, ", c2, "), got ",
      keys.sizes(), " and ", hyper_in.sizes());
  // (Cin, Cout, 2, 2) -> (Cin, 2 * 2 * Cout): column (ky * 2 + kx) * Cout + co.
  const auto w1 = up1.weight.permute({0, 2, 3, 1}).reshape({c, 4 * c1});
  const auto w2 = up2.weight.permute({0, 2, 3, 1}).reshape({c1, 4 * c2});
  const auto b1 = up1.bias.repeat({4}), b2 = up2.bias.repeat({4});
  const auto x = keys.to(dtype), hyper = hyper_in.to(dtype);
  // (B, M, h*w*16) in the order (h, w, ky1, kx1, ky2, kx2).
  auto flat = torch::empty({B, count, h * w * 16}, x.options());
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t0 = 0; t0 < h * w; t0 += upscale_chunk_tokens) {
      const int64_t n = std::min(upscale_chunk_tokens, h * w - t0);
      auto y = torch::addmm(b1, x[b].narrow(0, t0, n), w1).view({n * 4, c1});
      y = torch::gelu(torch::layer_norm(y, {c1}, norm.weight, norm.bias, norm.eps));
      y = torch::gelu(torch::addmm(b2, y, w2).view({n * 16, c2}));
      auto out = flat[b].narrow(1, t0 * 16, n * 16);
      torch::mm_out(out, hyper[b], y.t());
    }
  }
  return flat.view({B, count, h, w, 2, 2, 2, 2})
      .permute({0, 1, 2, 4, 6, 3, 5, 7})
      .reshape({B, count, 4 * h, 4 * w});
}

}  // namespace samdeblur::sam
