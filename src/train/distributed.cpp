#include "samdeblur/train/distributed.h"

// ProcessGroupGloo.hpp is compiled only with USE_C10D_GLOO (TorchConfig.cmake
// defines it for builds with Gloo) and needs the Gloo headers (Debian:
// libgloo-dev, the Gloo libtorch_cpu links). Without them this file still
// builds and multi-process training reports how to enable it.
#if __has_include(<gloo/algorithm.h>) && !defined(SAMDEBLUR_NO_GLOO)
#define SAMDEBLUR_HAVE_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#endif
// A CUDA LibTorch defines USE_C10D_NCCL; CMake sets SAMDEBLUR_NO_NCCL when nccl.h is missing.
#if defined(USE_C10D_NCCL) && !defined(SAMDEBLUR_NO_NCCL)
#define SAMDEBLUR_HAVE_NCCL 1
#endif

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/torch_compat.h"

#ifdef SAMDEBLUR_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef SAMDEBLUR_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace samdeblur::train {

namespace {

int64_t env_int(const char* name, int64_t fallback, bool* found = nullptr) {
  const char* v = std::getenv(name);
  if (found) *found = v != nullptr && *v;
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0')
    throw Error(fmt::format("environment variable {}='{}' is not an integer", name, v));
  return x;
}

}  // namespace

DistEnv DistEnv::from_environment(int64_t default_port) {
  DistEnv e;
  bool has_rank = false, has_world = false;
  e.rank = env_int("RANK", 0, &has_rank);
  e.world_size = env_int("WORLD_SIZE", 1, &has_world);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  if (!has_rank && !has_world) {  // SLURM without a torchrun-style wrapper
    e.rank = env_int("SLURM_PROCID", 0);
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.local_rank = env_int("SLURM_LOCALID", e.rank);
  }
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", default_port);
  if (e.world_size < 1 || e.rank < 0 || e.rank >= e.world_size)
    throw Error(fmt::format("invalid RANK={} / WORLD_SIZE={}", e.rank, e.world_size));
  if (e.master_port <= 0 || e.master_port > 65535)
    throw Error(fmt::format("invalid MASTER_PORT={}", e.master_port));
  return e;
}

bool distributed_available() {
#ifdef SAMDEBLUR_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

struct Communicator::Impl {
#ifdef SAMDEBLUR_HAVE_GLOO
  c10::intrusive_ptr<c10d::Store> store;
  // LibTorch 2.0 made ProcessGroupGloo / ProcessGroupNCCL backends (c10d::Backend)
  // that a c10d::ProcessGroup dispatches to; we call the backend directly.
#if SAMDEBLUR_TORCH_AT_LEAST(2, 0)
  c10::intrusive_ptr<c10d::Backend> pg;
#else
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
#endif
#endif
};

Communicator::Communicator(const DistEnv& env, const std::string& backend, double timeout_s)
    : env_(env), backend_(backend), impl_(std::make_unique<Impl>()) {
  if (env_.world_size == 1) return;
#ifndef SAMDEBLUR_HAVE_GLOO
  throw Error("this build has no Gloo headers (install libgloo-dev and rebuild) and cannot run " +
              std::to_string(env_.world_size) + " processes");
#else
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env_.master_port);
  so.isServer = env_.rank == 0;
  so.numWorkers = static_cast<std::size_t>(env_.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  impl_->store = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
  if (backend_ == "nccl") {
#ifdef SAMDEBLUR_HAVE_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        impl_->store, static_cast<int>(env_.rank), static_cast<int>(env_.world_size), opts);
    return;
#else
    log::warn("dist_params.backend nccl: this LibTorch build has no NCCL; using gloo");
    backend_ = "gloo";
#endif
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (env_.master_addr == "127.0.0.1" || env_.master_addr == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(env_.rank),
                                                          static_cast<int>(env_.world_size), opts);
#endif
}

Communicator::~Communicator() = default;

void Communicator::all_reduce_tensor(torch::Tensor& t) {
#ifdef SAMDEBLUR_HAVE_GLOO
  if (env_.world_size == 1) return;
  std::vector<at::Tensor> v{t};
  impl_->pg->allreduce(v)->wait();
#endif
}

void Communicator::broadcast_module(torch::nn::Module& module) {
#ifdef SAMDEBLUR_HAVE_GLOO
  if (env_.world_size == 1) return;
  torch::NoGradGuard guard;
  std::vector<torch::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  for (auto& t : tensors) {
    std::vector<at::Tensor> v{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->pg->broadcast(v, o)->wait();
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }
#endif
}

void Communicator::average_gradients(const std::vector<torch::Tensor>& params,
                                     int64_t bucket_bytes) {
  if (env_.world_size == 1) return;
  torch::NoGradGuard guard;
  // Which parameters have a gradient on any rank (DDP leaves a gradient that
  // no rank produced undefined; one that only some produced counts as zeros
  // elsewhere).
  std::vector<double> has_grad(params.size());
  for (std::size_t k = 0; k < params.size(); ++k)
    has_grad[k] = params[k].grad().defined() ? 1.0 : 0.0;
  all_reduce_sum(has_grad);
  std::vector<torch::Tensor> active;
  for (std::size_t k = 0; k < params.size(); ++k)
    if (has_grad[k] > 0) active.push_back(params[k]);
  const double inv = 1.0 / static_cast<double>(env_.world_size);
  std::size_t i = 0;
  while (i < active.size()) {
    // One bucket: consecutive parameters of one dtype/device up to bucket_bytes.
    std::size_t j = i;
    int64_t bytes = 0;
    std::vector<torch::Tensor> grads;
    while (j < active.size() &&
           (j == i || (bytes + active[j].numel() * active[j].element_size() <= bucket_bytes &&
                       active[j].scalar_type() == active[i].scalar_type() &&
                       active[j].device() == active[i].device()))) {
      const auto& p = active[j];
      bytes += p.numel() * p.element_size();
      grads.push_back(p.grad().defined() ? p.grad().reshape({-1})
                                         : torch::zeros({p.numel()}, p.options()));
      ++j;
    }
    torch::Tensor flat = torch::cat(grads);
    all_reduce_tensor(flat);
    flat.mul_(inv);
    int64_t offset = 0;
    for (std::size_t k = i; k < j; ++k) {
      auto p = active[k];
      auto slice = flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(slice);
      else
        p.mutable_grad() = slice.clone();
      offset += p.numel();
    }
    i = j;
  }
}

void Communicator::all_reduce_sum(std::vector<double>& values) {
  if (env_.world_size == 1 || values.empty()) return;
  torch::Tensor t = torch::tensor(values, torch::kFloat64);
  all_reduce_tensor(t);
  auto acc = t.accessor<double, 1>();
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = acc[static_cast<int64_t>(k)];
}

bool Communicator::any(bool flag) {
  if (env_.world_size == 1) return flag;
  std::vector<double> v{flag ? 1.0 : 0.0};
  all_reduce_sum(v);
  return v[0] > 0;
}

void Communicator::barrier() {
#ifdef SAMDEBLUR_HAVE_GLOO
  if (env_.world_size == 1) return;
  impl_->pg->barrier()->wait();
#endif
}

int64_t find_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("find_free_port: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error("find_free_port: bind() failed");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

namespace {
volatile sig_atomic_t g_forward_signal = 0;
void forward_handler(int sig) { g_forward_signal = sig; }
}  // namespace

int launch_local_workers(int64_t nproc, const std::vector<std::string>& argv, int64_t port) {
  if (nproc < 1) throw Error("--nproc-per-node must be >= 1");
  if (argv.empty()) throw Error("launch_local_workers: empty argv");
  if (port <= 0) port = find_free_port();
  log::info(fmt::format("launching {} local workers (MASTER_ADDR=127.0.0.1 MASTER_PORT={})", nproc,
                        port));
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = forward_handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids;
  for (int64_t r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("fork() failed");
    if (pid == 0) {
      // Child: own process group (the terminal's Ctrl-C reaches the launcher,
      // which forwards it once), die with the launcher.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv("/proc/self/exe", args.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  int result = 0;
  std::size_t alive = pids.size();
  bool forwarded = false;
  while (alive > 0) {
    if (g_forward_signal != 0 && !forwarded) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, g_forward_signal);
      forwarded = true;
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (auto& p : pids) {
      if (p != done) continue;
      p = -1;
      --alive;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0 && result == 0) {
        result = code;
        if (!forwarded) {  // one worker failed: stop the others
          for (pid_t q : pids)
            if (q > 0) ::kill(q, SIGTERM);
          forwarded = true;
        }
      }
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (g_forward_signal != 0 && result == 0) result = 0;  // workers saved and exited cleanly
  return result;
}

}  // namespace samdeblur::train
