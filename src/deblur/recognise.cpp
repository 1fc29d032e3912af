// Network recognition from checkpoint keys and shapes (deblur/recognise.h).
#include "samdeblur/deblur/recognise.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <optional>

#include "samdeblur/core/error.h"

namespace samdeblur::deblur {
namespace {

std::string strip_module(const std::string& key) {
  return key.rfind("module.", 0) == 0 ? key.substr(7) : key;
}

// "<prefix><i>.<rest>" -> i, or nullopt.
std::optional<int64_t> index_after(const std::string& key, const std::string& prefix) {
  if (key.rfind(prefix, 0) != 0) return std::nullopt;
  const std::size_t start = prefix.size();
  std::size_t end = start;
  while (end < key.size() && std::isdigit(static_cast<unsigned char>(key[end]))) ++end;
  if (end == start || end >= key.size() || key[end] != '.') return std::nullopt;
  return std::stoll(key.substr(start, end - start));
}

// Number of levels (max i + 1 of "<prefix><i>.") and, per level, the block count
// (max j + 1 of "<prefix><i>.<j>.").
std::vector<int64_t> block_counts(const std::vector<std::string>& keys, const std::string& prefix,
                                  int64_t levels) {
  std::vector<int64_t> counts(static_cast<std::size_t>(std::max<int64_t>(levels, 0)), 0);
  for (const auto& k : keys) {
    const auto i = index_after(k, prefix);
    if (!i || *i >= levels) continue;
    const auto j = index_after(k, prefix + std::to_string(*i) + ".");
    if (j) counts[static_cast<std::size_t>(*i)] = std::max(counts[*i], *j + 1);
  }
  return counts;
}

int64_t level_count(const std::vector<std::string>& keys, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& k : keys)
    if (const auto i = index_after(k, prefix)) n = std::max(n, *i + 1);
  return n;
}

[[noreturn]] void fail(const io::StateDict& sd, const std::string& source,
                       const std::string& problem) {
  std::string found;
  const std::size_t shown = std::min<std::size_t>(sd.size(), 8);
  for (std::size_t i = 0; i < shown; ++i)
    found += fmt::format("\n  {} {}", sd[i].first, fmt::format("{}", sd[i].second.sizes()));
  if (sd.size() > shown) found += fmt::format("\n  ... ({} more)", sd.size() - shown);
  throw FileError(source,
                  fmt::format("the checkpoint fits no known network (NAFNet, CAT NAFNet with "
                              "mask: true, SegNAFNet): {}. Found {} tensors:{}\nGive the network "
                              "explicitly with --config FILE.yml (network_g).",
                              problem, sd.size(), found));
}

}  // namespace

std::string Recognised::describe() const {
  std::string s =
      fmt::format("{} ({}) width {} enc {} middle {} dec {}", network.type, variant, network.width,
                  network.enc_blk_nums, network.middle_blk_num, network.dec_blk_nums);
  if (network.is_seg()) s += fmt::format(" seg_channel {}", network.seg_channel);
  return s;
}

Recognised recognise_network(const io::StateDict& sd, const std::string& source, bool tlc) {
  std::map<std::string, torch::Tensor> by_key;
  std::vector<std::string> keys;
  for (const auto& [k, t] : sd) {
    keys.push_back(strip_module(k));
    by_key[keys.back()] = t;
  }
  auto shape_of = [&](const std::string& key, int64_t dim) -> std::vector<int64_t> {
    const auto it = by_key.find(key);
    if (it == by_key.end()) fail(sd, source, "no tensor '" + key + "'");
    if (it->second.dim() != dim)
      fail(sd, source,
           fmt::format("'{}' has shape {}, expected {} dimensions", key,
                       fmt::format("{}", it->second.sizes()), dim));
    return it->second.sizes().vec();
  };
  const auto intro = shape_of("intro.weight", 4);
  const auto ending = shape_of("ending.weight", 4);
  Recognised r;
  models::NetworkOptions& n = r.network;
  n.width = intro[0];
  n.img_channel = ending[0];
  if (ending[1] != n.width)
    fail(sd, source,
         fmt::format("intro.weight has {} output channels but ending.weight {} input channels",
                     n.width, ending[1]));
  const int64_t in = intro[1];
  if (by_key.count("pre_seg.weight")) {
    const auto pre_seg = shape_of("pre_seg.weight", 4);
    n.seg_channel = pre_seg[0];
    if (in != n.img_channel + n.seg_channel)
      fail(sd, source,
           fmt::format("SegNAFNet (pre_seg present) needs intro.weight with {} + {} input "
                       "channels, got {}",
                       n.img_channel, n.seg_channel, in));
    r.variant = "SegNAFNet";
    n.type = tlc ? "SegNAFNetLocal" : "SegNAFNet";
  } else if (in == n.img_channel || in == n.img_channel + 1) {
    n.mask = in == n.img_channel + 1;
    r.variant = n.mask ? "CAT" : "NAFNet";
    n.type = tlc ? "NAFNetLocal" : "NAFNet";
  } else {
    fail(sd, source,
         fmt::format("intro.weight has {} input channels for {} image channels (NAFNet: {}, "
                     "CAT: {}; SegNAFNet would have pre_seg.weight)",
                     in, n.img_channel, n.img_channel, n.img_channel + 1));
  }
  const int64_t enc_levels = level_count(keys, "downs.");
  const int64_t dec_levels = level_count(keys, "ups.");
  if (enc_levels != dec_levels)
    fail(sd, source,
         fmt::format("{} encoder levels (downs.*) but {} decoder levels (ups.*)", enc_levels,
                     dec_levels));
  n.enc_blk_nums = block_counts(keys, "encoders.", enc_levels);
  n.dec_blk_nums = block_counts(keys, "decoders.", dec_levels);
  n.middle_blk_num = level_count(keys, "middle_blks.");
  n.validate();
  return r;
}

Recognised recognise_checkpoint(const std::string& path, bool tlc, const io::ReadOptions& read) {
  return recognise_network(io::load_state_dict_file(path, read), path, tlc);
}

}  // namespace samdeblur::deblur
