#pragma once
// The tiny deblurring networks the tests share: the options of the model fixtures' network
// and the four official-format fixture networks of tests/data/eval. Header-only, apart from
// test_support.h, so that a change here rebuilds only the tests that include it.
#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "samdeblur/models/network.h"

namespace samdeblur::test {

// The tiny network of the model fixtures (scripts/make_model_fixtures.py) of `type`: width 8,
// enc_blk_nums {1, 1}, middle_blk_num 1, dec_blk_nums {1, 1}, seg_channel 2; every other
// field the NetworkOptions default.
inline models::NetworkOptions tiny_network_options(const std::string& type) {
  models::NetworkOptions o;
  o.type = type;
  o.width = 8;
  o.seg_channel = 2;
  o.enc_blk_nums = {1, 1};
  o.middle_blk_num = 1;
  o.dec_blk_nums = {1, 1};
  return o;
}

// One of the four official-format fixture networks of tests/data/eval: checkpoint
// checkpoints/<name>.pth and expected.json["models"][name], written with the official code
// by scripts/make_eval_fixtures.py. Each is the tiny network above as network_g (width 8,
// enc_blk_nums [1, 1], middle_blk_num 1, dec_blk_nums [1, 1]) plus the lines of `extra`.
struct FixtureNetwork {
  std::string name;          // NAFNet | MaskNAFNet | SegNAFNet | SegNAFNet-plain
  std::string type;          // network_g.type
  std::string dataset_type;  // the type of the dataset it is evaluated on
  std::string mask_dir;      // that dataset's dataroot_mask below tests/data/eval ("" = none)
  std::string extra;         // further network_g lines of the YAML, "  key: value\n" each
};
inline void PrintTo(const FixtureNetwork& network, std::ostream* os) { *os << network.name; }

// The four, in the order above: INSTANTIATE_TEST_SUITE_P(Prefix, Suite,
// ::testing::ValuesIn(fixture_networks()), fixture_network_test_name).
inline const std::vector<FixtureNetwork>& fixture_networks() {
  static const std::vector<FixtureNetwork> networks = {
      {"NAFNet", "NAFNetLocal", "PairedImageDataset", "", "  train_size: [1, 3, 16, 16]\n"},
      {"MaskNAFNet", "NAFNetLocal", "PairedImageMaskDataset", "input_mask",
       "  mask: true\n  train_size: [1, 3, 16, 16]\n"},
      {"SegNAFNet", "SegNAFNetLocal", "PairedImageGroupMaskDataset", "grouped_masks",
       "  seg_channel: 2\n  train_size: [1, 3, 16, 16]\n"},
      {"SegNAFNet-plain", "SegNAFNet", "PairedImageGroupMaskDataset", "grouped_masks",
       "  seg_channel: 2\n"}};
  return networks;
}

// The one called `name`; std::runtime_error for any other name.
inline const FixtureNetwork& fixture_network(const std::string& name) {
  for (const auto& network : fixture_networks())
    if (network.name == name) return network;
  throw std::runtime_error("no fixture network " + name);
}

// A gtest parameter name for it: its name with '-' as '_'.
inline std::string fixture_network_test_name(const ::testing::TestParamInfo<FixtureNetwork>& info) {
  std::string name = info.param.name;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace samdeblur::test
