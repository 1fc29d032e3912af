// SAM compute precision (sam/precision.h).
#include "samdeblur/sam/precision.h"

#include "samdeblur/core/error.h"
#include "samdeblur/models/execution.h"

namespace samdeblur::sam {

Precision precision_from_name(const std::string& name, const std::string& what) {
  // One spelling for SAM and the deblurring networks: models::parse_precision owns the
  // names and the error.
  return models::parse_precision(name, what) == torch::kBFloat16 ? Precision::bf16
                                                                 : Precision::fp32;
}

std::string precision_name(Precision precision) {
  return precision == Precision::bf16 ? "bf16" : "fp32";
}

torch::ScalarType precision_dtype(Precision precision) {
  return precision == Precision::bf16 ? torch::kBFloat16 : torch::kFloat;
}

void check_precision_supported(Precision precision, const torch::Device& device) {
  check_precision_supported(precision, device,
                            precision == Precision::bf16 && models::cpu_supports_bf16());
}

void check_precision_supported(Precision precision, const torch::Device& device, bool cpu_bf16) {
  if (precision != Precision::bf16 || device.is_cuda() || cpu_bf16) return;
  throw Error(
      "SAM precision bf16 needs a CUDA device or a CPU with AVX512-BF16 or AMX-BF16 (flags "
      "avx512_bf16 / amx_bf16 in /proc/cpuinfo); this CPU has neither: use --precision fp32");
}

}  // namespace samdeblur::sam
