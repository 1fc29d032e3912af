// NetworkOptions::validate and the build_network factory (network.h).
#include "samdeblur/models/network.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/error.h"
#include "samdeblur/models/nafnet.h"
#include "samdeblur/models/seg_nafnet.h"

namespace samdeblur::models {
namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw ConfigError(fmt::format("network_g.{}: {}", key, what));
}

void check_positive(const std::string& key, int64_t value) {
  if (value < 1) fail(key, fmt::format("must be >= 1, got {}", value));
}

void check_counts(const std::string& key, const std::vector<int64_t>& counts) {
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 0)
      fail(fmt::format("{}[{}]", key, i), fmt::format("must be >= 0, got {}", counts[i]));
  }
}

bool is_network_type(const std::string& type) {
  const auto& types = network_types();
  return std::find(types.begin(), types.end(), type) != types.end();
}

// robustness: upper limits, checked before anything is allocated, so that a
// typo such as `width: 1000000` names the key instead of failing to allocate
// terabytes. Far above every official config (width 64, 28 blocks per level).
constexpr int64_t kMaxWidth = 1024;
constexpr int64_t kMaxBlocksPerLevel = 256;
constexpr int64_t kMaxChannels = 64;            // img_channel, seg_channel
constexpr int64_t kMaxDeepestChannels = 16384;  // width * 2^levels (official: 32 * 16)

void check_at_most(const std::string& key, int64_t value, int64_t limit) {
  if (value > limit) fail(key, fmt::format("{} is above the limit of {}", value, limit));
}

void check_counts_at_most(const std::string& key, const std::vector<int64_t>& counts) {
  for (size_t i = 0; i < counts.size(); ++i)
    check_at_most(fmt::format("{}[{}]", key, i), counts[i], kMaxBlocksPerLevel);
}

}  // namespace

const std::vector<std::string>& network_types() {
  static const std::vector<std::string> types = {"NAFNet", "NAFNetLocal", "SegNAFNet",
                                                 "SegNAFNetLocal"};
  return types;
}

void NetworkOptions::validate() const {
  if (!is_network_type(type)) {
    fail("type", fmt::format("unknown network type '{}'; valid types: {}", type,
                             fmt::join(network_types(), ", ")));
  }
  check_positive("img_channel", img_channel);
  check_positive("width", width);
  if (middle_blk_num < 0)
    fail("middle_blk_num", fmt::format("must be >= 0, got {}", middle_blk_num));
  check_counts("enc_blk_nums", enc_blk_nums);
  check_counts("dec_blk_nums", dec_blk_nums);
  check_at_most("img_channel", img_channel, kMaxChannels);
  check_at_most("width", width, kMaxWidth);
  check_at_most("middle_blk_num", middle_blk_num, kMaxBlocksPerLevel);
  check_counts_at_most("enc_blk_nums", enc_blk_nums);
  check_counts_at_most("dec_blk_nums", dec_blk_nums);
  if (is_seg()) check_at_most("seg_channel", seg_channel, kMaxChannels);
  if (enc_blk_nums.size() > 16) {
    fail("enc_blk_nums", fmt::format("at most 16 levels supported, got {}", enc_blk_nums.size()));
  }
  {  // robustness: channels double per encoder level
    const int64_t deepest = width << static_cast<int>(enc_blk_nums.size());
    if (deepest > kMaxDeepestChannels)
      fail("width",
           fmt::format("{} doubled at each of the {} enc_blk_nums levels gives {} channels, "
                       "above the limit of {}",
                       width, enc_blk_nums.size(), deepest, kMaxDeepestChannels));
  }
  // The decoder consumes the encoder skips in reverse; a different count would crop
  // a wrongly sized output in the reference.
  if (dec_blk_nums.size() != enc_blk_nums.size()) {
    fail("dec_blk_nums", fmt::format("must have as many levels as enc_blk_nums ({}), got {}",
                                     enc_blk_nums.size(), dec_blk_nums.size()));
  }
  if (!(drop_out_rate >= 0.0 && drop_out_rate < 1.0)) {
    fail("drop_out_rate", fmt::format("must be in [0, 1), got {}", drop_out_rate));
  }
  if (is_seg()) {
    check_positive("seg_channel", seg_channel);
    if (!(mask_dropout >= 0.0 && mask_dropout <= 1.0)) {
      fail("mask_dropout", fmt::format("must be in [0, 1], got {}", mask_dropout));
    }
    if (mask) fail("mask", fmt::format("not an option of {} (true is NAFNet's CAT variant)", type));
  }
  if (is_local()) {
    if (train_size.size() != 4) {
      fail("train_size", fmt::format("must be [N, C, H, W], got {} values", train_size.size()));
    }
    for (size_t i = 0; i < 4; ++i) {
      if (train_size[i] < 1) {
        fail(fmt::format("train_size[{}]", i), fmt::format("must be >= 1, got {}", train_size[i]));
      }
    }
  }
}

NetworkOptions parse_network_options(config::Section s) {
  NetworkOptions n;
  n.type = s.required<std::string>("type");
  if (!is_network_type(n.type))
    throw ConfigError(fmt::format("{}: {} = '{}' is not a known network; valid: {}", s.source(),
                                  s.key_path("type"), n.type, fmt::join(network_types(), ", ")));
  n.img_channel = s.get<int64_t>("img_channel", n.img_channel);
  n.width = s.get<int64_t>("width", n.width);
  n.middle_blk_num = s.get<int64_t>("middle_blk_num", n.middle_blk_num);
  n.enc_blk_nums = s.get<std::vector<int64_t>>("enc_blk_nums", n.enc_blk_nums);
  n.dec_blk_nums = s.get<std::vector<int64_t>>("dec_blk_nums", n.dec_blk_nums);
  // Constructor arguments the official class does not take are an error there
  // (TypeError); here too, with the key named.
  if (n.is_seg()) {
    n.seg_channel = s.get<int64_t>("seg_channel", n.seg_channel);
    n.mask_dropout = s.get<double>("mask_dropout", n.mask_dropout);
  } else {
    n.mask = s.get<bool>("mask", n.mask);
  }
  if (n.is_local()) {
    n.train_size = s.get<std::vector<int64_t>>("train_size", n.train_size);
    n.fast_imp = s.get<bool>("fast_imp", n.fast_imp);
  }
  n.drop_out_rate = s.get<double>("drop_out_rate", n.drop_out_rate);
  s.finish(nullptr);
  try {
    n.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(s.source() + ": " + e.what());  // validate() names network_g.<key>
  }
  return n;
}

DeblurNet build_network(const NetworkOptions& options) {
  options.validate();
  if (options.is_seg()) return std::make_shared<SegNAFNetImpl>(options);
  return std::make_shared<NAFNetImpl>(options);
}

}  // namespace samdeblur::models
