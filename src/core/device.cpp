#include "samdeblur/core/device.h"

#include <fmt/format.h>

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

}  // namespace samdeblur
