#pragma once
// Data-parallel training on PyTorch's c10d (the library torch.distributed
// wraps): rendezvous through c10d::TCPStore, collectives through
// c10d::ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors, when
// this LibTorch build has it: USE_C10D_NCCL). Environment as torchrun / SLURM
// wrappers set it: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
//
// DDP semantics reproduced (torch.nn.parallel.DistributedDataParallel):
//  - parameters and buffers are broadcast from rank 0 at start;
//  - after backward, gradients are flattened into buckets (bucket_bytes each,
//    default 4 MiB), all-reduced (sum) and divided by world_size; a parameter
//    without a gradient on some ranks counts as zeros there, one without a
//    gradient on every rank keeps none (DDP with find_unused_parameters).
// Gradients are all-reduced on the communication device, so a CUDA model uses
// NCCL and a CPU model Gloo.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace samdeblur::train {

struct DistEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  // Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; falls back to
  // SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID; absent -> single process.
  // default_port is used when MASTER_PORT is unset. Throws Error on malformed values.
  static DistEnv from_environment(int64_t default_port = 29500);
  bool distributed() const { return world_size > 1; }
};

// True when this build can run multi-process training (Gloo headers found).
bool distributed_available();

class Communicator {
 public:
  // world_size 1: every collective is a no-op. Otherwise connects to the
  // TCPStore (rank 0 hosts it) and creates the process group; backend "nccl"
  // needs CUDA tensors and a build with NCCL, else Error. timeout_s bounds the
  // rendezvous and every collective.
  Communicator(const DistEnv& env, const std::string& backend = "gloo", double timeout_s = 300);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const std::string& backend() const { return backend_; }

  // Copies rank 0's parameters and buffers into every rank.
  void broadcast_module(torch::nn::Module& module);
  // Averages the gradients of `params` over ranks (bucketed, see above).
  void average_gradients(const std::vector<torch::Tensor>& params, int64_t bucket_bytes = 4 << 20);
  // In-place sum over ranks of a float64 vector (validation sums, flags).
  void all_reduce_sum(std::vector<double>& values);
  // Logical OR of a flag over ranks (e.g. "stop requested").
  bool any(bool flag);
  void barrier();

 private:
  void all_reduce_tensor(torch::Tensor& t);
  DistEnv env_;
  std::string backend_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Launches `nproc` copies of this executable (argv with --nproc-per-node
// removed by the caller) on this node with RANK=LOCAL_RANK=i, WORLD_SIZE=nproc,
// MASTER_ADDR=127.0.0.1 and MASTER_PORT=port (a free one when port <= 0),
// forwards SIGINT/SIGTERM to them, waits, and returns the first non-zero exit
// status (128 + signal for a worker killed by a signal), or 0. When one worker
// fails the others are sent SIGTERM.
int launch_local_workers(int64_t nproc, const std::vector<std::string>& argv, int64_t port = 0);

// A TCP port that was free a moment ago on 127.0.0.1.
int64_t find_free_port();

}  // namespace samdeblur::train
