#pragma once
// Device selection shared by the apps, the evaluator and the trainer.
#include <torch/torch.h>

#include <string>

namespace samdeblur {

// Parses "cpu", "cuda", "cuda:N"; throws Error naming --device when the text
// is not a device, or CUDA (or device N) is requested but absent.
torch::Device parse_device(const std::string& text);

// Sets the CPU threads of every pool that runs our kernels: LibTorch's intra-op
// (OpenMP) pool and, when the process has one, the BLAS library's own pool.
// Debian's LibTorch runs fp32 matrix products through OpenBLAS, whose pthread
// build keeps nproc threads whatever torch::set_num_threads says, so "1 thread"
// would otherwise still run matrix products on every core. n <= 0 changes nothing.
// Returns the BLAS library whose threads were set ("openblas", "blis") or "".
std::string set_cpu_threads(int n);

// The BLAS pool's thread count, or -1 when no known BLAS library is loaded.
int blas_threads();

}  // namespace samdeblur
