#include "samdeblur/models/nafnet.h"

#include <fmt/format.h>

#include "samdeblur/core/error.h"
#include "samdeblur/models/fused_forward.h"

namespace samdeblur::models {
namespace {

torch::nn::Sequential make_stage(int64_t blocks, int64_t channels, const NetworkOptions& options,
                                 int64_t level) {
  torch::nn::Sequential stage;
  for (int64_t i = 0; i < blocks; ++i) {
    NAFBlockOptions block(channels);
    block.drop_out_rate(options.drop_out_rate);
    if (options.is_local()) {
      const auto size = tlc_level_size(options, level);
      block.local_pool(tlc_pool_options(size[0], size[1], options.train_size[2],
                                        options.train_size[3], options.fast_imp));
    }
    stage->push_back(NAFBlock(block));
  }
  return stage;
}

// An empty nn.Sequential is the identity in Python; the C++ one throws.
torch::Tensor run(torch::nn::Sequential& stage, const torch::Tensor& x) {
  return stage->is_empty() ? x : stage->forward(x);
}

// pixel_shuffle(x, 2) + skip by the one-pass kernel (bit-identical) when no
// gradient is needed and both are channels-last (a channels-last execution);
// never on the NCHW exact path, whose layout it would change.
bool shuffle_add_in_one_pass(const torch::Tensor& x, const torch::Tensor& skip) {
  const bool needs_grad =
      torch::GradMode::is_enabled() && (x.requires_grad() || skip.requires_grad());
  return !needs_grad && forward_kernels_apply(x) && forward_kernels_apply(skip) &&
         !skip.is_contiguous() && x.scalar_type() == skip.scalar_type();
}

}  // namespace

torch::Tensor pad_to_multiple(const torch::Tensor& x, int64_t multiple) {
  const int64_t h = x.size(-2), w = x.size(-1);
  const int64_t pad_h = (multiple - h % multiple) % multiple;
  const int64_t pad_w = (multiple - w % multiple) % multiple;
  if (pad_h == 0 && pad_w == 0) return x;
  return torch::constant_pad_nd(x, {0, pad_w, 0, pad_h}, 0);
}

std::array<int64_t, 2> tlc_level_size(const NetworkOptions& options, int64_t level) {
  const int64_t padder = int64_t{1} << options.enc_blk_nums.size();
  auto padded = [padder](int64_t s) { return (s + padder - 1) / padder * padder; };
  return {padded(options.train_size[2]) >> level, padded(options.train_size[3]) >> level};
}

void NAFUNet::register_on(torch::nn::Module& owner, const NetworkOptions& options,
                          int64_t in_channels) {
  namespace nn = torch::nn;
  const int64_t width = options.width;
  intro = owner.register_module("intro",
                                nn::Conv2d(nn::Conv2dOptions(in_channels, width, 3).padding(1)));
  ending = owner.register_module(
      "ending", nn::Conv2d(nn::Conv2dOptions(width, options.img_channel, 3).padding(1)));
  encoders = owner.register_module("encoders", nn::ModuleList());
  decoders = owner.register_module("decoders", nn::ModuleList());
  // Placeholder keeps the official position of `middle_blks` (first assigned as a
  // ModuleList, then replaced by a Sequential); replaced below.
  middle_blks = owner.register_module("middle_blks", nn::Sequential());
  ups = owner.register_module("ups", nn::ModuleList());
  downs = owner.register_module("downs", nn::ModuleList());

  int64_t chan = width;
  int64_t level = 0;
  for (int64_t blocks : options.enc_blk_nums) {
    auto stage = make_stage(blocks, chan, options, level);
    encoders->push_back(stage);
    encoder_seqs_.push_back(stage);
    nn::Conv2d down(nn::Conv2dOptions(chan, 2 * chan, 2).stride(2));
    downs->push_back(down);
    down_convs_.push_back(down);
    chan *= 2;
    ++level;
  }
  middle_blks =
      owner.replace_module("middle_blks", make_stage(options.middle_blk_num, chan, options, level));
  for (int64_t blocks : options.dec_blk_nums) {
    nn::Sequential up(nn::Conv2d(nn::Conv2dOptions(chan, 2 * chan, 1).bias(false)),
                      nn::PixelShuffle(nn::PixelShuffleOptions(2)));
    ups->push_back(up);
    up_seqs_.push_back(up);
    chan /= 2;
    --level;
    auto stage = make_stage(blocks, chan, options, level);
    decoders->push_back(stage);
    decoder_seqs_.push_back(stage);
  }
  padder_size_ = int64_t{1} << options.enc_blk_nums.size();
}

torch::Tensor NAFUNet::forward(const torch::Tensor& input) {
  auto x = intro(input);
  std::vector<torch::Tensor> skips;
  skips.reserve(encoder_seqs_.size());
  for (size_t i = 0; i < encoder_seqs_.size(); ++i) {
    x = run(encoder_seqs_[i], x);
    skips.push_back(x);
    x = down_convs_[i](x);
  }
  x = run(middle_blks, x);
  for (size_t i = 0; i < decoder_seqs_.size(); ++i) {
    x = up_seqs_[i]->at<torch::nn::Conv2dImpl>(0).forward(x);  // (B, 4C, h, w)
    const auto& skip = skips[skips.size() - 1 - i];            // (B, C, 2h, 2w)
    if (shuffle_add_in_one_pass(x, skip)) {
      x = pixel_shuffle_add_cl(x, skip);
    } else {
      x = up_seqs_[i]->at<torch::nn::PixelShuffleImpl>(1).forward(x) + skip;
    }
    x = run(decoder_seqs_[i], x);
  }
  return ending(x);
}

NAFNetImpl::NAFNetImpl(const NetworkOptions& options) : options_(options) {
  options_.validate();
  if (options_.is_seg()) {
    throw ConfigError(fmt::format("network_g.type: NAFNetImpl cannot build '{}'", options_.type));
  }
  body_.register_on(*this, options_, input_channels());
  if (options_.is_local()) eval();
}

torch::Tensor NAFNetImpl::forward(const torch::Tensor& input, const std::vector<SegMasks>& masks) {
  TORCH_CHECK(masks.empty(), options_.type, " takes no SAM masks (got ", masks.size(), ")");
  TORCH_CHECK(input.dim() == 4 && input.size(1) == input_channels(), options_.type,
              ": expected (B, ", input_channels(), ", H, W) input, got ", input.sizes());
  const int64_t h = input.size(2), w = input.size(3);
  const auto padded = pad_to_multiple(input, body_.padder_size());
  auto out = body_.forward(to_execution(padded));
  const int64_t c = options_.img_channel;
  auto crop = [&](const torch::Tensor& t) {
    return t.slice(1, 0, c).slice(2, 0, h).slice(3, 0, w);
  };
  if (execution().is_default()) return crop(out) + crop(padded);
  // The residual in float32, the output NCHW float32 whatever the execution.
  return (crop(out).to(torch::kFloat) + crop(padded)).contiguous();
}

}  // namespace samdeblur::models
