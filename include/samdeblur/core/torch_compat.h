#pragma once
// The one place where samdeblur's sources differ between LibTorch versions.
// Tested: Debian's LibTorch 1.13.1 (the default build) and the PyPI torch 2.11
// wheel's LibTorch (scripts/check_libtorch2.sh); README, "LibTorch versions".
// Add a helper here only where an API really differs, with the version it changed in.

#include <ATen/autocast_mode.h>
#include <torch/version.h>

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

}  // namespace samdeblur::compat
