// c10d data parallelism: 2 CPU processes (Gloo over loopback, TCPStore
// rendezvous) give the same parameters after K = 3 AdamW steps as 1 process
// with the same global batch. The workers are this test binary re-executed
// through launch_local_workers with --gtest_filter=DistributedWorker.*.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"
#include "samdeblur/train/distributed.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;

namespace {

constexpr int kSteps = 3;
constexpr int64_t kGlobalBatch = 4;

struct NetImpl : torch::nn::Module {
  NetImpl() {
    a = register_module("a", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 6, 3).padding(1)));
    b = register_module("b", torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 3, 3).padding(1)));
    unused = register_module("unused", torch::nn::Linear(2, 2));  // no gradient: counts as zeros
  }
  torch::Tensor forward(const torch::Tensor& x) { return x + b(torch::gelu(a(x))); }
  torch::nn::Conv2d a{nullptr}, b{nullptr};
  torch::nn::Linear unused{nullptr};
};
TORCH_MODULE(Net);

// Trains on samples [begin, end) of the fixed global batch of each step.
// Loss = mean over the local batch (as PSNRLoss), so averaging the gradients
// of equal halves equals the full-batch gradient.
io::StateDict run_steps(train::Communicator& comm, int64_t begin, int64_t end, uint64_t init_seed) {
  torch::manual_seed(init_seed);
  Net net;
  comm.broadcast_module(*net);
  auto params = net->parameters();
  torch::optim::AdamW opt(params,
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.9}).weight_decay(1e-3));
  for (int step = 0; step < kSteps; ++step) {
    torch::manual_seed(1000 + step);
    const torch::Tensor x = torch::rand({kGlobalBatch, 3, 8, 8});
    const torch::Tensor y = torch::rand({kGlobalBatch, 3, 8, 8});
    opt.zero_grad();
    const torch::Tensor out = net->forward(x.slice(0, begin, end));
    const torch::Tensor loss = (out - y.slice(0, begin, end)).pow(2).mean({1, 2, 3}).mean();
    loss.backward();
    comm.average_gradients(params, /*bucket_bytes=*/512);  // several buckets
    opt.step();
  }
  io::StateDict sd;
  for (const auto& kv : net->named_parameters())
    sd.emplace_back(kv.key(), kv.value().detach().clone());
  return sd;
}

}  // namespace

TEST(DistEnv, ReadsTorchrunVariables) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("MASTER_ADDR", "10.0.0.2", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  const auto e = train::DistEnv::from_environment();
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.master_addr, "10.0.0.2");
  EXPECT_EQ(e.master_port, 1234);
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(train::DistEnv::from_environment(), samdeblur::Error);
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"})
    ::unsetenv(v);
  EXPECT_EQ(train::DistEnv::from_environment(777).master_port, 777);
  EXPECT_FALSE(train::DistEnv::from_environment().distributed());
}

// Runs only inside a worker started by the test below.
TEST(DistributedWorker, Run) {
  const char* out = std::getenv("SDB_DIST_TEST_OUT");
  if (!out) GTEST_SKIP() << "worker of Distributed.TwoProcessesMatchOneProcess";
  const auto env = train::DistEnv::from_environment();
  train::Communicator comm(env, "gloo", 60);
  const int64_t half = kGlobalBatch / env.world_size;
  // Different initial weights per rank: the broadcast must fix them.
  const auto sd = run_steps(comm, env.rank * half, (env.rank + 1) * half, 10 + env.rank);
  std::vector<double> v{static_cast<double>(env.rank + 1)};
  comm.all_reduce_sum(v);
  ASSERT_EQ(v[0], 3.0);
  EXPECT_TRUE(comm.any(env.rank == 1));
  EXPECT_FALSE(comm.any(false));
  comm.barrier();
  io::save_state_dict_file(std::string(out) + "/rank" + std::to_string(env.rank) + ".pth", sd);
}

TEST(Distributed, TwoProcessesMatchOneProcess) {
  if (!train::distributed_available()) GTEST_SKIP() << "built without Gloo headers (libgloo-dev)";
  const test::TempDir dir("dist");
  ::setenv("SDB_DIST_TEST_OUT", dir.str().c_str(), 1);
  const int rc =
      train::launch_local_workers(2, {"sdb-tests", "--gtest_filter=DistributedWorker.Run"});
  ::unsetenv("SDB_DIST_TEST_OUT");
  ASSERT_EQ(rc, 0);

  train::Communicator single(train::DistEnv{});
  const auto ref = run_steps(single, 0, kGlobalBatch, 10);
  for (int r = 0; r < 2; ++r) {
    const auto got =
        io::load_state_dict_file((dir / ("rank" + std::to_string(r) + ".pth")).string());
    ASSERT_EQ(got.size(), ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double diff = (got[i].second - ref[i].second).abs().max().item<double>();
      EXPECT_LT(diff, 1e-5) << "rank " << r << " " << ref[i].first;
    }
  }
  // The parameters moved (the comparison is not trivially true).
  torch::manual_seed(10);
  Net init;
  EXPECT_GT((init->named_parameters()["a.weight"] - ref[0].second).abs().max().item<double>(),
            1e-3);
}
