// NCCL in this build: a one-process NCCL group (the GPU machine has one GPU) reduces a
// CUDA tensor (scripts/gpu/run_gpu_checks.sh; README, "LibTorch versions"). Communicator
// itself makes no group for one process, so this calls c10d as Communicator does for
// dist_params.backend nccl. Skips without CUDA or without NCCL (LibTorch 1.13 from Debian).
#include <gtest/gtest.h>
#include <torch/torch.h>

#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define SAMDEBLUR_TEST_NCCL 1
#endif

#include <vector>

TEST(DistributedCuda, OneProcessNcclAllReduce) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA not available";
#ifndef SAMDEBLUR_TEST_NCCL
  GTEST_SKIP() << "this LibTorch has no NCCL (or nccl.h was not found)";
#else
  auto store = c10::make_intrusive<c10d::HashStore>();
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, 0, 1,
                                                        c10d::ProcessGroupNCCL::Options::create());
  const auto expected = torch::arange(4096, torch::kFloat32);
  std::vector<at::Tensor> tensors{expected.to(torch::kCUDA)};
  ASSERT_TRUE(pg->allreduce(tensors)->wait());
  EXPECT_TRUE(torch::equal(tensors[0].cpu(), expected));  // the sum over one rank
  std::vector<at::Tensor> flag{torch::ones({1}, torch::kCUDA)};
  pg->broadcast(flag)->wait();
  EXPECT_EQ(flag[0].item<float>(), 1.0f);
#endif
}
