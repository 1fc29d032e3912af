// Training checkpoints: exact round trip of weights, AdamW state and RNG;
// continuing from a restored checkpoint equals continuing the original;
// corrupt checkpoints are detected and skipped by --resume auto; pruning;
// net_g_<iter>.pth is a BasicSR {'params': ...} file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/train/checkpoint.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)));
    head = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 3, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return head(torch::dropout(torch::relu(conv(x)), 0.2, is_training()));
  }
  torch::nn::Conv2d conv{nullptr}, head{nullptr};
};
TORCH_MODULE(Tiny);

void train_steps(Tiny& net, torch::optim::Optimizer& opt, int n) {
  for (int i = 0; i < n; ++i) {
    const torch::Tensor x = torch::rand({2, 3, 8, 8});  // uses (and advances) the global RNG
    opt.zero_grad();
    const torch::Tensor loss = (net->forward(x) - x).pow(2).mean();
    loss.backward();
    opt.step();
  }
}

std::unique_ptr<torch::optim::AdamW> make_opt(Tiny& net) {
  return std::make_unique<torch::optim::AdamW>(
      net->parameters(), torch::optim::AdamWOptions(1e-2).betas({0.9, 0.9}).weight_decay(1e-3));
}

void expect_same_params(Tiny& a, Tiny& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& kv : pa) EXPECT_TRUE(torch::equal(kv.value(), pb[kv.key()])) << kv.key();
}

}  // namespace

TEST(TrainCheckpoint, RoundTripContinuesIdentically) {
  const test::TempDir tmp("rt");
  const fs::path dir = tmp / "run";
  torch::manual_seed(1);
  Tiny net;
  auto opt = make_opt(net);
  train_steps(net, *opt, 3);
  train::CheckpointManager mgr(dir.string(), 3);
  train::TrainingState st;
  st.iter = 3;
  st.epoch = 1;
  st.loader = {{"epoch", 1}, {"position", 5}, {"seed", 7}};
  st.best_psnr = 21.5;
  st.best_iter = 2;
  const std::string json = mgr.save(st, *net, *opt);
  EXPECT_TRUE(fs::exists(dir / "models/net_g_3.pth"));
  EXPECT_TRUE(fs::exists(dir / "training_states/3.state.pth"));

  // Original continues 2 steps.
  train_steps(net, *opt, 2);

  // A fresh model/optimizer restored from the checkpoint continues 2 steps too.
  torch::manual_seed(99);  // garbage RNG state: load must restore it
  Tiny net2;
  auto opt2 = make_opt(net2);
  const train::TrainingState got = mgr.load(json, *net2, *opt2);
  EXPECT_EQ(got.iter, 3);
  EXPECT_EQ(got.epoch, 1);
  EXPECT_EQ(got.loader["position"], 5);
  EXPECT_DOUBLE_EQ(got.best_psnr, 21.5);
  EXPECT_EQ(got.best_iter, 2);
  train_steps(net2, *opt2, 2);
  expect_same_params(net, net2);
}

TEST(TrainCheckpoint, NetworkFileIsBasicSRParams) {
  const test::TempDir tmp("net");
  const fs::path dir = tmp / "run";
  Tiny net;
  auto opt = make_opt(net);
  train::CheckpointManager mgr(dir.string(), 3);
  const std::string path = mgr.save_network(*net, "latest");
  const io::StateDict sd = io::load_state_dict_file(path, "params");
  ASSERT_EQ(sd.size(), 4u);
  EXPECT_EQ(sd[0].first, "conv.weight");
  if (!test::python_has("torch")) GTEST_SKIP() << "python3 torch not installed";
  const auto py = test::run_python(
      {"-c",
       "import sys, torch; d=torch.load(sys.argv[1], map_location='cpu'); "
       "assert list(d)==['params']; "
       "assert list(d['params'])==['conv.weight','conv.bias','head.weight','head.bias']",
       path});
  EXPECT_EQ(py.exit_code, 0) << py.output();
}

TEST(TrainCheckpoint, CorruptCheckpointIsSkippedByAuto) {
  const test::TempDir tmp("bad");
  const fs::path dir = tmp / "run";
  Tiny net;
  auto opt = make_opt(net);
  train_steps(net, *opt, 1);
  train::CheckpointManager mgr(dir.string(), 5);
  train::TrainingState st;
  st.iter = 10;
  const std::string good = mgr.save(st, *net, *opt);
  st.iter = 20;
  const std::string newer = mgr.save(st, *net, *opt);
  EXPECT_EQ(mgr.resolve_resume("auto"), newer);

  // Flip one byte of the newest state file: invalid, auto falls back.
  const std::string state_pth = (dir / "training_states/20.state.pth").string();
  auto bytes = read_file_bytes(state_pth);
  bytes[bytes.size() / 2] ^= 0xFF;
  write_file_atomic(state_pth, bytes.data(), bytes.size());
  EXPECT_THROW(mgr.verify(newer), FileError);
  EXPECT_EQ(mgr.resolve_resume("auto"), good);
  EXPECT_THROW(mgr.resolve_resume(newer), FileError);

  // A JSON cut short (a crash in a non-atomic writer) is also rejected.
  write_file_atomic(good, std::string("{\"format\": \"samdeblur-tr"));
  EXPECT_EQ(mgr.resolve_resume("auto"), "");
  // Missing net file.
  EXPECT_EQ(train::CheckpointManager((dir / "none").string()).resolve_resume("auto"), "");
}

TEST(TrainCheckpoint, NonFiniteStateIsRefusedUnlessAllowed) {
  // sdb-train --resume: a checkpoint whose weights hold NaN / Inf is refused with the
  // count per tensor (the check sdb-eval applies to path.pretrain_network_g);
  // allow_nonfinite (--allow-nonfinite) loads it.
  const test::TempDir tmp("nonfinite");
  const fs::path dir = tmp / "run";
  Tiny net;
  auto opt = make_opt(net);
  train_steps(net, *opt, 1);
  {
    torch::NoGradGuard g;
    net->head->weight.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
    net->head->weight.view(-1)[1] = std::numeric_limits<float>::infinity();
  }
  train::CheckpointManager mgr(dir.string(), 3);
  train::TrainingState st;
  st.iter = 4;
  const std::string json = mgr.save(st, *net, *opt);
  EXPECT_EQ(mgr.resolve_resume("auto"), json);  // intact files: the CRCs match

  Tiny net2;
  auto opt2 = make_opt(net2);
  const torch::Tensor before = net2->head->weight.clone();
  const std::string msg = test::error_of<FileError>([&] { mgr.load(json, *net2, *opt2); });
  EXPECT_NE(msg.find("4.state.pth"), std::string::npos) << msg;
  EXPECT_NE(msg.find("net.head.weight: 2 of 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--allow-nonfinite"), std::string::npos) << msg;
  EXPECT_TRUE(torch::equal(net2->head->weight, before)) << "refused, yet the weights changed";

  const train::TrainingState got = mgr.load(json, *net2, *opt2, /*allow_nonfinite=*/true);
  EXPECT_EQ(got.iter, 4);
  EXPECT_TRUE(std::isnan(net2->head->weight.view(-1)[0].item<float>()));
  EXPECT_TRUE(std::isinf(net2->head->weight.view(-1)[1].item<float>()));
}

TEST(TrainCheckpoint, KeepsLastN) {
  const test::TempDir tmp("keep");
  const fs::path dir = tmp / "run";
  Tiny net;
  auto opt = make_opt(net);
  train_steps(net, *opt, 1);
  train::CheckpointManager mgr(dir.string(), 2);
  train::TrainingState st;
  for (int64_t it : {1, 2, 3, 4}) {
    st.iter = it;
    mgr.save(st, *net, *opt);
  }
  const auto all = mgr.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all[0].find("4.state.json"), std::string::npos);
  EXPECT_NE(all[1].find("3.state.json"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "models/net_g_1.pth"));
  EXPECT_FALSE(fs::exists(dir / "training_states/2.state.pth"));
  EXPECT_TRUE(fs::exists(dir / "models/net_g_3.pth"));
}

TEST(TrainCheckpoint, RngStateRoundTrip) {
  torch::manual_seed(5);
  const torch::Tensor s = train::cpu_rng_state();
  const torch::Tensor a = torch::rand({4});
  train::set_cpu_rng_state(s);
  EXPECT_TRUE(torch::equal(a, torch::rand({4})));
}
