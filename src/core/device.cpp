#include "samdeblur/core/device.h"

#include <unistd.h>

#include <dlfcn.h>

#include <fmt/format.h>
#include <cstdint>
#include <cstdlib>
#include <set>

#include "samdeblur/core/blas.h"
#include "samdeblur/core/error.h"

namespace samdeblur {

torch::Device parse_device(const std::string& text) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw Error("--device: '" + text + "' is not a device (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw Error("--device " + text + ": CUDA is not available in this build/machine");
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error(fmt::format("--device {}: only {} CUDA device(s) present", text,
                              torch::cuda::device_count()));
  }
  return device;
}

namespace {

// Looks a symbol up in the libraries the process has loaded (no dlopen: a BLAS
// library that is not loaded runs nothing of ours).
template <typename Fn>
Fn loaded_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

std::string set_cpu_threads(int n) {
  if (n <= 0) return "";
  torch::set_num_threads(n);
  if (auto set = loaded_symbol<void (*)(int)>("openblas_set_num_threads")) {
    set(n);
    return "openblas";
  }
  if (auto set = loaded_symbol<void (*)(std::int64_t)>("bli_thread_set_num_threads")) {
    set(n);
    return "blis";
  }
  return "";
}

std::string blas_kernel() {
  auto name = loaded_symbol<char* (*)()>("openblas_get_corename");
  return name ? std::string(name()) : std::string();
}

std::string blas_description() {
  const std::string kernel = blas_kernel();
  if (kernel.empty()) return "OpenBLAS: not loaded";
  return fmt::format("OpenBLAS {}, {} threads", kernel, blas_threads());
}

std::string blas_kernel_for_cpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "Cooperlake";
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

bool blas_kernel_is_generic(const std::string& kernel) {
  static const std::set<std::string> generic = {"Prescott", "Core2",  "Penryn",    "Dunnington",
                                                "Nehalem",  "Katmai", "Northwood", "Banias"};
  return generic.count(kernel) > 0;
}

void reexec_with_fast_blas_kernel(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("SAMDEBLUR_KEEP_BLAS_KERNEL")) return;
  const std::string current = blas_kernel();
  if (!blas_kernel_is_generic(current)) return;
  const std::string wanted = blas_kernel_for_cpu();
  if (wanted.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", wanted.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // exec failed: go on with the generic kernels
}

int blas_threads() {
  if (auto get = loaded_symbol<int (*)()>("openblas_get_num_threads")) return get();
  if (auto get = loaded_symbol<std::int64_t (*)()>("bli_thread_get_num_threads"))
    return static_cast<int>(get());
  return -1;
}

}  // namespace samdeblur
