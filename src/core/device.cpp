#include "samdeblur/core/device.h"

#include <dlfcn.h>

#include <fmt/format.h>
#include <cstdint>

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

int blas_threads() {
  if (auto get = loaded_symbol<int (*)()>("openblas_get_num_threads")) return get();
  if (auto get = loaded_symbol<std::int64_t (*)()>("bli_thread_get_num_threads"))
    return static_cast<int>(get());
  return -1;
}

}  // namespace samdeblur
