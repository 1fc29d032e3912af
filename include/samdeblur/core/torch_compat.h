#pragma once
// The one place where samdeblur's sources differ between LibTorch versions.
// Tested: Debian's LibTorch 1.13.1 (the default build) and the PyPI torch 2.11
// wheel's LibTorch (scripts/check_libtorch2.sh); README, "LibTorch versions".
// Add a helper here only where an API really differs, with the version it changed in.

#include <ATen/autocast_mode.h>
#include <torch/optim/optimizer.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

// True when the LibTorch being compiled against is at least major.minor.
#define SAMDEBLUR_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace samdeblur::compat {

// Turns CUDA autocast on (computing in `dtype`) or off for this thread.
// LibTorch 2.4 replaced at::autocast::set_enabled / set_autocast_gpu_dtype (now
// deprecated) by the device-typed set_autocast_enabled / set_autocast_dtype.
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype = at::kHalf) {
#if SAMDEBLUR_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  if (enabled) at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  if (enabled) at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

// Key of a parameter's entry in torch::optim::Optimizer::state(): LibTorch 1.13 keys
// by the TensorImpl address printed to a string (c10::guts::to_string, gone in 2.x),
// LibTorch 2.x by the address itself (void*).
using OptimizerStateKey =
    std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <typename Key = OptimizerStateKey>
Key optimizer_state_key(const at::Tensor& param) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;  // what c10::guts::to_string did
    s << param.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(param.unsafeGetTensorImpl());
  }
}

}  // namespace samdeblur::compat
