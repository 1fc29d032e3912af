// Checkpoint recognition (deblur/recognise.h): random-weight checkpoints of every
// network type written with our .pth writer, the official-code fixtures of
// tests/data/eval/checkpoints, and the error for a checkpoint of something else.
#include "samdeblur/deblur/recognise.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "samdeblur/io/checkpoint.h"
#include "samdeblur/models/network.h"
#include "support/test_support.h"

namespace {

using samdeblur::deblur::recognise_checkpoint;
using samdeblur::deblur::recognise_network;
namespace io = samdeblur::io;
namespace models = samdeblur::models;

io::StateDict state_dict_of(const models::NetworkOptions& o) {
  const auto net = models::build_network(o);
  io::StateDict sd;
  for (const auto& p : net->named_parameters()) sd.emplace_back(p.key(), p.value().detach());
  for (const auto& b : net->named_buffers()) sd.emplace_back(b.key(), b.value());
  return sd;
}

void expect_same_network(const models::NetworkOptions& got, const models::NetworkOptions& want) {
  EXPECT_EQ(got.type, want.type);
  EXPECT_EQ(got.width, want.width);
  EXPECT_EQ(got.img_channel, want.img_channel);
  EXPECT_EQ(got.enc_blk_nums, want.enc_blk_nums);
  EXPECT_EQ(got.dec_blk_nums, want.dec_blk_nums);
  EXPECT_EQ(got.middle_blk_num, want.middle_blk_num);
  EXPECT_EQ(got.mask, want.mask);
  if (want.is_seg()) {
    EXPECT_EQ(got.seg_channel, want.seg_channel);
  }
}

struct Case {
  std::string name, type, variant;
  bool mask = false;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class RecogniseTypes : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(RecogniseTypes, RandomWeightCheckpointOfEachType) {
  const Case c = GetParam();
  models::NetworkOptions o;
  o.type = c.type;
  o.width = 8;
  o.mask = c.mask;
  o.seg_channel = 3;
  o.enc_blk_nums = {1, 2, 0};
  o.middle_blk_num = 2;
  o.dec_blk_nums = {2, 1, 1};
  torch::manual_seed(3);
  const samdeblur::test::TempDir tmp("recognise");
  const std::string path = (tmp / (c.name + ".pth")).string();
  io::save_state_dict_file(path, state_dict_of(o));
  const bool tlc = o.is_local();
  const auto r = recognise_checkpoint(path, tlc);
  expect_same_network(r.network, o);
  EXPECT_EQ(r.variant, c.variant);
  // The other TLC choice gives the other form of the same network.
  const auto other = recognise_checkpoint(path, !tlc);
  EXPECT_EQ(other.network.is_local(), !tlc);
  EXPECT_EQ(other.network.is_seg(), o.is_seg());
  // What was recognised loads strictly.
  const auto net = models::build_network(r.network);
  EXPECT_TRUE(io::load_state_dict(*net, io::load_state_dict_file(path), true, path).ok());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RecogniseTypes,
                         ::testing::Values(Case{"NAFNet", "NAFNet", "NAFNet"},
                                           Case{"NAFNetLocal", "NAFNetLocal", "NAFNet"},
                                           Case{"CAT", "NAFNet", "CAT", true},
                                           Case{"CATLocal", "NAFNetLocal", "CAT", true},
                                           Case{"SegNAFNet", "SegNAFNet", "SegNAFNet"},
                                           Case{"SegNAFNetLocal", "SegNAFNetLocal", "SegNAFNet"}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(Recognise, OfficialFixtureCheckpoints) {
  // Written by the official code (scripts/make_eval_fixtures.py); kwargs in expected.json.
  const auto expected =
      samdeblur::test::load_json_fixture("eval/expected.json", "run scripts/make_eval_fixtures.py");
  const std::map<std::string, std::string> variant = {{"NAFNet", "NAFNet"},
                                                      {"MaskNAFNet", "CAT"},
                                                      {"SegNAFNet", "SegNAFNet"},
                                                      {"SegNAFNet-plain", "SegNAFNet"}};
  for (const auto& [name, v] : variant) {
    SCOPED_TRACE(name);
    const auto& kw = expected["models"][name]["kwargs"];
    const auto r =
        recognise_checkpoint(samdeblur::test::data_path("eval/checkpoints/" + name + ".pth"), true);
    EXPECT_EQ(r.variant, v);
    EXPECT_EQ(r.network.type, v == "SegNAFNet" ? "SegNAFNetLocal" : "NAFNetLocal");
    EXPECT_EQ(r.network.width, kw["width"].get<int64_t>());
    EXPECT_EQ(r.network.enc_blk_nums, kw["enc_blk_nums"].get<std::vector<int64_t>>());
    EXPECT_EQ(r.network.dec_blk_nums, kw["dec_blk_nums"].get<std::vector<int64_t>>());
    EXPECT_EQ(r.network.middle_blk_num, kw["middle_blk_num"].get<int64_t>());
    EXPECT_EQ(r.network.mask, kw.value("mask", false));
    if (kw.contains("seg_channel")) {
      EXPECT_EQ(r.network.seg_channel, kw["seg_channel"].get<int64_t>());
    }
  }
}

TEST(Recognise, GoProWidth32KeyListIsRecognised) {
  // The official GoPro key lists (tests/data/models/keys.json): shapes only.
  const auto keys =
      samdeblur::test::load_json_fixture("models/keys.json", "run scripts/make_model_fixtures.py");
  for (const auto& [name, variant] : std::map<std::string, std::string>{
           {"NAFNet", "NAFNet"}, {"MaskNAFNet", "CAT"}, {"SegNAFNet", "SegNAFNet"}}) {
    SCOPED_TRACE(name);
    io::StateDict sd;
    for (const auto& kv : keys["keys"][name])
      sd.emplace_back("module." + kv[0].get<std::string>(),
                      torch::empty(kv[1].get<std::vector<int64_t>>()));
    const auto r = recognise_network(sd, name, false);
    EXPECT_EQ(r.variant, variant);
    EXPECT_EQ(r.network.width, 32);
    EXPECT_EQ(r.network.enc_blk_nums, (std::vector<int64_t>{1, 1, 1, 28}));
    EXPECT_EQ(r.network.dec_blk_nums, (std::vector<int64_t>{1, 1, 1, 1}));
    EXPECT_EQ(r.network.middle_blk_num, 1);
    if (variant == "SegNAFNet") {
      EXPECT_EQ(r.network.seg_channel, 2);
    }
    EXPECT_NE(r.describe().find("width 32"), std::string::npos) << r.describe();
  }
}

TEST(Recognise, ForeignCheckpointIsAClearError) {
  // A Segment Anything checkpoint is no deblurring network.
  const std::string sam = samdeblur::test::tiny_sam_checkpoint();
  const std::string msg =
      samdeblur::test::error_of<samdeblur::FileError>([&] { recognise_checkpoint(sam, true); });
  EXPECT_NE(msg.find(sam), std::string::npos) << msg;
  EXPECT_NE(msg.find("fits no known network"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no tensor 'intro.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("image_encoder."), std::string::npos) << msg;  // what was found
  EXPECT_NE(msg.find("--config"), std::string::npos) << msg;
}

TEST(Recognise, IntroChannelsThatFitNoVariantAreNamed) {
  models::NetworkOptions o;
  o.enc_blk_nums = {1};
  o.dec_blk_nums = {1};
  io::StateDict sd = state_dict_of(o);
  for (auto& [k, t] : sd)
    if (k == "intro.weight") t = torch::zeros({16, 6, 3, 3});
  const std::string msg =
      samdeblur::test::error_of<samdeblur::FileError>([&] { recognise_network(sd, "x.pth"); });
  EXPECT_NE(msg.find("intro.weight has 6 input channels"), std::string::npos) << msg;
}
