// NAFNet / NAFNetLocal / CAT variant against the official architecture:
// key parity, parameter counts, TLC kernels and golden outputs and gradients.
#include "samdeblur/models/nafnet.h"

#include <gtest/gtest.h>

#include "model_fixtures.h"
#include "samdeblur/core/error.h"
#include "samdeblur/models/local_pool.h"
#include "samdeblur/models/network.h"
#include "samdeblur/models/seg_nafnet.h"
#include "support/tiny_networks.h"

namespace sm = samdeblur::models;
using samdeblur::test::tiny_network_options;
using sm::testing::build_with_fixture;
using sm::testing::expect_close;
using sm::testing::key_file;
using sm::testing::load_fixture;

namespace {

sm::NetworkOptions gopro(const std::string& type) {
  sm::NetworkOptions o;
  o.type = type;
  o.width = 32;
  o.enc_blk_nums = {1, 1, 1, 28};
  o.middle_blk_num = 1;
  o.dec_blk_nums = {1, 1, 1, 1};
  return o;
}

// Ordered (key, shape) list of a module, as the official state_dict lists them.
std::vector<std::pair<std::string, std::vector<int64_t>>> keys_of(torch::nn::Module& m) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
  return out;
}

void expect_key_parity(torch::nn::Module& m, const std::string& which) {
  const auto& want_json = key_file().at("keys").at(which);
  std::vector<std::pair<std::string, std::vector<int64_t>>> want;
  for (const auto& item : want_json) {
    want.emplace_back(item.at(0).get<std::string>(), item.at(1).get<std::vector<int64_t>>());
  }
  const auto got = keys_of(m);
  const std::set<std::pair<std::string, std::vector<int64_t>>> got_set(got.begin(), got.end()),
      want_set(want.begin(), want.end());
  std::string diff;
  for (const auto& k : want_set) {
    if (!got_set.count(k)) diff += " missing:" + k.first;
  }
  for (const auto& k : got_set) {
    if (!want_set.count(k)) diff += " unexpected:" + k.first;
  }
  EXPECT_TRUE(diff.empty()) << which << ":" << diff;
  EXPECT_EQ(got, want) << which << ": same set, different order";
}

int64_t param_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::map<std::string, std::array<int64_t, 4>> pool_kernels(torch::nn::Module& m) {
  std::map<std::string, std::array<int64_t, 4>> out;
  for (const auto& item : m.named_modules()) {
    if (auto* pool = dynamic_cast<sm::LocalAvgPool2dImpl*>(item.value().get())) {
      const auto& o = pool->options;
      out[item.key()] = {o.kernel_size[0], o.kernel_size[1], o.max_r[0], o.max_r[1]};
    }
  }
  return out;
}

void expect_kernels(torch::nn::Module& m, const std::string& which) {
  std::map<std::string, std::array<int64_t, 4>> want;
  for (const auto& [name, v] : key_file().at("tlc_kernels").at(which).items()) {
    want[name] = v.get<std::array<int64_t, 4>>();
  }
  ASSERT_FALSE(want.empty()) << which;
  EXPECT_EQ(pool_kernels(m), want) << which;
}

}  // namespace

TEST(NAFNetKeys, GoProKeysAndCountsEqualOfficial) {
  auto net = sm::build_network(gopro("NAFNet"));
  expect_key_parity(*net, "NAFNet");
  EXPECT_EQ(param_count(*net), key_file().at("param_counts").at("NAFNet").get<int64_t>());
  EXPECT_EQ(param_count(*net), 17111907);

  auto cat_opts = gopro("NAFNet");
  cat_opts.mask = true;
  auto cat = sm::build_network(cat_opts);
  expect_key_parity(*cat, "MaskNAFNet");
  EXPECT_EQ(param_count(*cat), 17112195);
  EXPECT_EQ(cat->input_channels(), 4);

  auto seg_opts = gopro("SegNAFNet");
  seg_opts.seg_channel = 2;
  auto seg = sm::build_network(seg_opts);
  expect_key_parity(*seg, "SegNAFNet");
  EXPECT_EQ(param_count(*seg), 17112545);
  EXPECT_TRUE(seg->needs_masks());
}

TEST(NAFNetKeys, LocalVariantsHaveTheSameKeys) {
  auto net = sm::build_network(gopro("NAFNetLocal"));
  expect_key_parity(*net, "NAFNet");
  expect_kernels(*net, "NAFNetLocal");
  EXPECT_FALSE(net->is_training());  // the official constructor leaves it in eval mode

  auto cat_opts = gopro("NAFNetLocal");
  cat_opts.mask = true;
  auto cat = sm::build_network(cat_opts);
  expect_key_parity(*cat, "MaskNAFNet");
  expect_kernels(*cat, "MaskNAFNetLocal");

  // Train size not a multiple of the padder (the dummy forward pads it), fast_imp.
  auto seg_opts = gopro("SegNAFNetLocal");
  seg_opts.seg_channel = 2;
  seg_opts.train_size = {1, 3, 200, 168};
  seg_opts.fast_imp = true;
  auto seg = sm::build_network(seg_opts);
  expect_key_parity(*seg, "SegNAFNet");
  expect_kernels(*seg, "SegNAFNetLocal_fast_train200x168");
}

namespace {

void check_case(const std::string& fixture, sm::NetworkOptions options, bool grads) {
  SCOPED_TRACE(fixture);
  const auto data = load_fixture(fixture + ".npz");
  auto net = build_with_fixture(std::move(options), data);
  net->eval();
  const auto input = data.at("input").clone().requires_grad_(grads);
  const auto input_copy = input.detach().clone();
  const auto out = net->forward(input);
  expect_close(out, data.at("output"), 1e-4, fixture + " output");
  EXPECT_TRUE(torch::equal(input.detach(), input_copy)) << "input mutated";
  if (!grads) return;
  (out * data.at("loss_weight")).sum().backward();
  expect_close(input.grad(), data.at("g.input"), 1e-4, fixture + " grad input");
  for (const auto& p : net->named_parameters()) {
    const auto& want = data.at("g." + p.key());
    // Parameter gradients sum over many pixels: relative tolerance.
    const double scale = std::max(1.0, want.abs().max().item<double>());
    expect_close(p.value().grad(), want, 1e-4 * scale, fixture + " grad " + p.key());
  }
}

}  // namespace

TEST(NAFNetParity, MatchesOfficialOutputsAndGradients) {
  check_case("nafnet", tiny_network_options("NAFNet"), /*grads=*/true);
}

TEST(NAFNetParity, CatVariantMatchesOfficial) {
  auto o = tiny_network_options("NAFNet");
  o.mask = true;
  check_case("nafnet_cat", o, /*grads=*/true);
}

TEST(NAFNetParity, LocalMatchesOfficial) {
  check_case("nafnet_local", tiny_network_options("NAFNetLocal"), false);
}

TEST(NAFNetParity, LocalFastImpMatchesOfficial) {
  auto o = tiny_network_options("NAFNetLocal");
  o.fast_imp = true;
  check_case("nafnet_local_fast", o, false);
}

TEST(NAFNet, OddSizesKeepShapeAndRunUnderInferenceMode) {
  auto net = sm::build_network(tiny_network_options("NAFNet"));
  c10::InferenceMode guard;
  for (auto [h, w] : {std::pair{1, 1}, {5, 3}, {17, 32}, {33, 7}}) {
    const auto out = net->forward(torch::rand({2, 3, h, w}));
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, h, w}));
  }
  EXPECT_THROW(net->forward(torch::rand({1, 4, 8, 8})), c10::Error);
  EXPECT_THROW(net->forward(torch::rand({1, 3, 8, 8}), {sm::SegMasks{}}), c10::Error);
}

TEST(NAFNet, GradientsFlowOnATinyModel) {
  auto o = tiny_network_options("NAFNet");
  o.enc_blk_nums = {1};
  o.dec_blk_nums = {1};
  o.drop_out_rate = 0.1;
  auto net = sm::build_network(o);
  net->train();
  {
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) {
      if (p.dim() == 4 && p.size(0) == 1) p.uniform_(-0.5, 0.5);  // beta / gamma
    }
  }
  const auto x = torch::rand({2, 3, 9, 11}, torch::requires_grad());
  net->forward(x).pow(2).mean().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

TEST(NetworkOptions, ValidateNamesTheKey) {
  auto expect_error = [](sm::NetworkOptions o, const std::string& needle) {
    try {
      o.validate();
      ADD_FAILURE() << "expected ConfigError containing " << needle;
    } catch (const samdeblur::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto o = tiny_network_options("NAFNet");
  EXPECT_NO_THROW(o.validate());
  auto bad = o;
  bad.type = "UNet";
  expect_error(bad, "network_g.type");
  expect_error(bad, "NAFNet, NAFNetLocal, SegNAFNet, SegNAFNetLocal");
  expect_error(bad, "'UNet'");
  bad = o;
  bad.width = 0;
  expect_error(bad, "network_g.width: must be >= 1, got 0");
  bad = o;
  bad.dec_blk_nums = {1};
  expect_error(bad, "network_g.dec_blk_nums");
  bad = o;
  bad.enc_blk_nums = {1, -2};
  bad.dec_blk_nums = {1, 1};
  expect_error(bad, "network_g.enc_blk_nums[1]");
  bad = tiny_network_options("SegNAFNet");
  bad.mask_dropout = 1.5;
  expect_error(bad, "network_g.mask_dropout");
  bad = tiny_network_options("SegNAFNet");
  bad.mask = true;
  expect_error(bad, "network_g.mask");
  bad = tiny_network_options("NAFNetLocal");
  bad.train_size = {1, 3, 0, 256};
  expect_error(bad, "network_g.train_size[2]");
  bad = o;
  bad.drop_out_rate = -0.1;
  expect_error(bad, "network_g.drop_out_rate");
  EXPECT_THROW(sm::build_network(bad), samdeblur::ConfigError);
}

TEST(BuildNetwork, BuildsEveryType) {
  for (const std::string type : {"NAFNet", "NAFNetLocal", "SegNAFNet", "SegNAFNetLocal"}) {
    auto net = sm::build_network(tiny_network_options(type));
    EXPECT_EQ(net->options().type, type);
    EXPECT_EQ(net->needs_masks(), type.rfind("Seg", 0) == 0);
    EXPECT_EQ(net->input_channels(), 3);
  }
}
