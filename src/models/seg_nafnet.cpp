#include "samdeblur/models/seg_nafnet.h"

#include <fmt/format.h>

#include "samdeblur/core/error.h"
#include "samdeblur/models/map_unit.h"

namespace samdeblur::models {

SegNAFNetImpl::SegNAFNetImpl(const NetworkOptions& options) : options_(options) {
  namespace nn = torch::nn;
  options_.validate();
  if (!options_.is_seg()) {
    throw ConfigError(
        fmt::format("network_g.type: SegNAFNetImpl cannot build '{}'", options_.type));
  }
  const int64_t img = options_.img_channel, seg = options_.seg_channel;
  pre_seg = register_module("pre_seg", nn::Conv2d(nn::Conv2dOptions(img, seg, 3).padding(1)));
  pre_seg_in = register_module("pre_seg_in", nn::Conv2d(nn::Conv2dOptions(seg, seg, 1)));
  body_.register_on(*this, options_, img + seg);
  if (options_.is_local()) eval();
}

torch::Tensor SegNAFNetImpl::seg_features(const torch::Tensor& padded,
                                          const std::vector<SegMasks>& masks) {
  const int64_t hp = padded.size(2), wp = padded.size(3);
  auto features = pre_seg_in(pre_seg(to_execution(padded)));  // (B, seg_channel, Hp, Wp)
  // The MAP unit runs in float32 on NCHW features whatever the execution.
  if (!execution().is_default()) features = features.to(torch::kFloat).contiguous();
  // unbind, not features[b]: its backward stacks the B gradients once, where B
  // selects would each fill a zero (B, C, Hp, Wp) gradient and add them up.
  const std::vector<torch::Tensor> per_image = features.unbind(0);  // B x (C, Hp, Wp)
  std::vector<torch::Tensor> pooled;
  pooled.reserve(masks.size());
  for (size_t b = 0; b < masks.size(); ++b) {
    SegMasks m = masks[b].to(padded.device());
    if (is_training()) m = drop_masks(m, options_.mask_dropout);
    pooled.push_back(mask_average(per_image[b], pad_masks(m, hp, wp)));
  }
  return torch::stack(pooled);
}

torch::Tensor SegNAFNetImpl::forward(const torch::Tensor& input,
                                     const std::vector<SegMasks>& masks) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options_.img_channel, options_.type,
              ": expected (B, ", options_.img_channel, ", H, W) input, got ", input.sizes());
  const int64_t b = input.size(0), h = input.size(2), w = input.size(3);
  TORCH_CHECK(b >= 1, options_.type, ": empty batch");
  TORCH_CHECK(static_cast<int64_t>(masks.size()) == b, options_.type, ": expected ", b,
              " SegMasks (one per image), got ", masks.size());
  for (size_t i = 0; i < masks.size(); ++i) {
    TORCH_CHECK(masks[i].height() == h && masks[i].width() == w, options_.type, ": masks of image ",
                i, " are ", masks[i].height(), "x", masks[i].width(), ", image is ", h, "x", w);
  }
  const auto padded = pad_to_multiple(input, body_.padder_size());
  const auto seg = seg_features(padded, masks);
  auto out = body_.forward(to_execution(torch::cat({padded, seg}, 1)));
  const int64_t c = options_.img_channel;
  auto crop = [&](const torch::Tensor& t) {
    return t.slice(1, 0, c).slice(2, 0, h).slice(3, 0, w);
  };
  if (execution().is_default()) return crop(out) + crop(padded);
  return (crop(out).to(torch::kFloat) + crop(padded)).contiguous();
}

}  // namespace samdeblur::models
