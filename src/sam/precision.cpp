// SAM compute precision (sam/precision.h).
#include "samdeblur/sam/precision.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "samdeblur/core/error.h"

namespace samdeblur::sam {

Precision precision_from_name(const std::string& name, const std::string& what) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw ConfigError(fmt::format("{}: unknown precision '{}' (valid: fp32, bf16)", what, name));
}

std::string precision_name(Precision precision) {
  return precision == Precision::bf16 ? "bf16" : "fp32";
}

torch::ScalarType precision_dtype(Precision precision) {
  return precision == Precision::bf16 ? torch::kBFloat16 : torch::kFloat;
}

bool cpuinfo_lists_bf16(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string word;
    while (words >> word)
      if (word == "avx512_bf16" || word == "amx_bf16") return true;
  }
  return false;
}

bool cpu_has_native_bf16() {
  static const bool supported = [] {
    std::ifstream in("/proc/cpuinfo");
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    return cpuinfo_lists_bf16(text.str());
  }();
  return supported;
}

void check_precision_supported(Precision precision, const torch::Device& device) {
  check_precision_supported(precision, device,
                            precision == Precision::bf16 && cpu_has_native_bf16());
}

void check_precision_supported(Precision precision, const torch::Device& device, bool cpu_bf16) {
  if (precision != Precision::bf16 || device.is_cuda() || cpu_bf16) return;
  throw Error(
      "SAM precision bf16 needs a CUDA device or a CPU with AVX512-BF16 or AMX-BF16 (flags "
      "avx512_bf16 / amx_bf16 in /proc/cpuinfo); this CPU has neither: use --precision fp32");
}

}  // namespace samdeblur::sam
