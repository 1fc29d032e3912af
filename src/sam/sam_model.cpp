// Mirrors segment_anything/modeling/sam.py (Sam.preprocess, Sam.postprocess_masks) and
// segment_anything/build_sam.py (the vit_b / vit_l / vit_h configurations).
#include "samdeblur/sam/sam_model.h"

#include <map>
#include <regex>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"

namespace F = torch::nn::functional;

namespace samdeblur::sam {

namespace {
SamConfig official(const std::string& name, int64_t dim, int64_t depth, int64_t heads,
                   std::vector<int64_t> global) {
  SamConfig c;
  c.model_type = name;
  c.encoder_embed_dim = dim;
  c.encoder_depth = depth;
  c.encoder_num_heads = heads;
  c.encoder_global_attn_indexes = std::move(global);
  return c;
}
}  // namespace

SamConfig SamConfig::vit_b() { return official("vit_b", 768, 12, 12, {2, 5, 8, 11}); }
SamConfig SamConfig::vit_l() { return official("vit_l", 1024, 24, 16, {5, 11, 17, 23}); }
SamConfig SamConfig::vit_h() { return official("vit_h", 1280, 32, 16, {7, 15, 23, 31}); }

SamConfig SamConfig::from_name(const std::string& model_type) {
  if (model_type == "vit_b") return vit_b();
  if (model_type == "vit_l") return vit_l();
  if (model_type == "vit_h" || model_type == "default")
    return vit_h();  // sam_model_registry["default"]
  throw Error("unknown SAM model type '" + model_type +
              "'; valid: vit_b, vit_l, vit_h, default (= vit_h)" +
              " (make_predictor also accepts auto)");
}

SamImpl::SamImpl(const SamConfig& c) : config(c) {
  TORCH_CHECK(c.patch_size > 0 && c.image_size % c.patch_size == 0, "SAM image_size ", c.image_size,
              " must be a multiple of patch_size ", c.patch_size);
  const int64_t grid = c.image_size / c.patch_size;
  ImageEncoderOptions eo;
  eo.img_size = c.image_size;
  eo.patch_size = c.patch_size;
  eo.embed_dim = c.encoder_embed_dim;
  eo.depth = c.encoder_depth;
  eo.num_heads = c.encoder_num_heads;
  eo.out_chans = c.prompt_embed_dim;
  eo.window_size = c.window_size;
  eo.global_attn_indexes = c.encoder_global_attn_indexes;
  image_encoder = register_module("image_encoder", ImageEncoderViT(eo));
  prompt_encoder = register_module(
      "prompt_encoder", PromptEncoder(c.prompt_embed_dim, std::make_pair(grid, grid),
                                      std::make_pair(c.image_size, c.image_size), c.mask_in_chans));
  MaskDecoderOptions mo;
  mo.transformer_dim = c.prompt_embed_dim;
  mo.transformer_depth = c.decoder_depth;
  mo.transformer_num_heads = c.decoder_num_heads;
  mo.transformer_mlp_dim = c.mlp_dim_decoder;
  mo.num_multimask_outputs = c.num_multimask_outputs;
  mo.iou_head_depth = c.iou_head_depth;
  mo.iou_head_hidden_dim = c.iou_head_hidden_dim;
  mask_decoder = register_module("mask_decoder", MaskDecoder(mo));
  pixel_mean =
      register_buffer("pixel_mean", torch::tensor({123.675f, 116.28f, 103.53f}).view({-1, 1, 1}));
  pixel_std =
      register_buffer("pixel_std", torch::tensor({58.395f, 57.12f, 57.375f}).view({-1, 1, 1}));
}

torch::Tensor SamImpl::preprocess(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "Sam.preprocess expects (B, 3, h, w), got ",
              x.sizes());
  const int64_t size = config.image_size, h = x.size(2), w = x.size(3);
  TORCH_CHECK(h <= size && w <= size, "Sam.preprocess: input ", h, "x", w, " exceeds image_size ",
              size);
  auto y = (x - pixel_mean.to(torch::kFloat)) / pixel_std.to(torch::kFloat);
  return F::pad(y, F::PadFuncOptions({0, size - w, 0, size - h}));
}

torch::Tensor SamImpl::postprocess_masks(const torch::Tensor& masks,
                                         std::pair<int64_t, int64_t> input_size,
                                         std::pair<int64_t, int64_t> original_size) {
  auto opts = [](int64_t h, int64_t w) {
    return F::InterpolateFuncOptions()
        .size(std::vector<int64_t>{h, w})
        .mode(torch::kBilinear)
        .align_corners(false);
  };
  auto m = F::interpolate(masks, opts(config.image_size, config.image_size));
  m = m.slice(2, 0, input_size.first).slice(3, 0, input_size.second);
  return F::interpolate(m, opts(original_size.first, original_size.second));
}

const std::set<std::string>& non_persistent_buffers() {
  static const std::set<std::string> names{"pixel_mean", "pixel_std"};
  return names;
}

std::string detect_model_type(const io::StateDict& sd, const std::string& source) {
  int64_t embed_dim = -1;
  int64_t depth = 0;
  static const std::regex block_re(R"(^(?:module\.)?image_encoder\.blocks\.(\d+)\.)");
  for (const auto& [key, t] : sd) {
    std::string k = key.rfind("module.", 0) == 0 ? key.substr(7) : key;
    if (k == "image_encoder.patch_embed.proj.weight" && t.dim() == 4) embed_dim = t.size(0);
    std::smatch m;
    if (std::regex_search(key, m, block_re)) depth = std::max<int64_t>(depth, std::stoll(m[1]) + 1);
  }
  if (embed_dim < 0)
    throw Error(source + ": not a SAM checkpoint (no 4-D image_encoder.patch_embed.proj.weight)");
  for (const auto& c : {SamConfig::vit_b(), SamConfig::vit_l(), SamConfig::vit_h()})
    if (c.encoder_embed_dim == embed_dim && c.encoder_depth == depth) return c.model_type;
  throw Error(source + ": SAM image encoder with embed dim " + std::to_string(embed_dim) + " and " +
              std::to_string(depth) +
              " blocks is none of vit_b (768, 12), vit_l (1024, 24), vit_h (1280, 32); name its "
              "config explicitly");
}

SamConfig resolve_config(const SamConfig& requested, const io::StateDict& sd,
                         const std::string& source) {
  const auto& t = requested.model_type;
  if (t == "auto") {
    SamConfig c = SamConfig::from_name(detect_model_type(sd, source));
    c.mask_threshold = requested.mask_threshold;
    return c;
  }
  if (t == "vit_b" || t == "vit_l" || t == "vit_h" || t == "default") {
    const std::string named = t == "default" ? "vit_h" : t;
    const std::string found = detect_model_type(sd, source);
    if (found != named)
      throw Error(source + ": model_type '" + t + "' was requested but the checkpoint is " + found +
                  " (use model_type " + found + " or auto)");
  }
  return requested;
}

void load_sam_state_dict(SamImpl& model, const io::StateDict& sd, const std::string& source) {
  io::StateDict full = sd;
  for (const auto& name : non_persistent_buffers()) {
    bool present = false;
    for (const auto& [k, t] : sd) present = present || k == name || k == "module." + name;
    if (!present) full.emplace_back(name, *model.named_buffers(false).find(name));
  }
  io::load_state_dict(model, full, /*strict=*/true, source);
}

Sam make_sam(const SamConfig& config, const std::string& checkpoint, const torch::Device& device) {
  SamConfig cfg = config;
  io::StateDict sd;
  if (!checkpoint.empty()) {
    sd = io::load_state_dict_file(checkpoint, "params");
    cfg = resolve_config(config, sd, checkpoint);
  } else if (cfg.model_type == "auto") {
    throw Error("SAM model_type 'auto' needs a checkpoint to detect the type from");
  }
  Sam model(cfg);
  if (!checkpoint.empty()) load_sam_state_dict(*model, sd, checkpoint);
  model->eval();
  model->to(device);
  log::debug("SAM " + cfg.model_type + " built on " + device.str() +
             (checkpoint.empty() ? " with random weights" : " from " + checkpoint));
  return model;
}

}  // namespace samdeblur::sam
