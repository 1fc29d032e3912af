// Execution options of the deblurring networks (models/execution.h).
#include "samdeblur/models/execution.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "samdeblur/core/error.h"
#include "samdeblur/models/layers.h"
#include "samdeblur/models/network.h"

namespace samdeblur::models {

torch::ScalarType parse_precision(const std::string& value, const std::string& what) {
  if (value == "fp32") return torch::kFloat;
  if (value == "bf16") return torch::kBFloat16;
  throw ConfigError(fmt::format("{}: unknown precision '{}' (valid: fp32, bf16)", what, value));
}

ExecutionOptions parse_execution(const std::string& precision, const std::string& memory_format,
                                 const std::string& what, const torch::Device& device) {
  ExecutionOptions o;
  o.dtype = parse_precision(precision, what);
  if (memory_format == "channels_last" || (memory_format == "auto" && device.is_cpu())) {
    o.channels_last = true;
    o.fused = true;  // models/fused_forward.h: float32 and bfloat16
  } else if (memory_format != "contiguous" && memory_format != "auto") {
    throw ConfigError(
        fmt::format("{}: unknown memory format '{}' (valid: auto, contiguous, channels_last)", what,
                    memory_format));
  }
  return o;
}

bool cpuinfo_has_bf16(const std::string& cpuinfo) {
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

bool cpu_supports_bf16() {
  static const bool supported = [] {
    std::ifstream in("/proc/cpuinfo");
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    return cpuinfo_has_bf16(text.str());
  }();
  return supported;
}

void check_execution_supported(const ExecutionOptions& options, const torch::Device& device) {
  if (options.dtype != torch::kBFloat16 || device.is_cuda()) return;
  if (!cpu_supports_bf16()) {
    throw Error(
        "precision bf16 needs a CPU with AVX512-BF16 or AMX-BF16 (flags avx512_bf16 / amx_bf16 "
        "in /proc/cpuinfo) or a CUDA device; this CPU has neither: use precision fp32");
  }
}

void DeblurNetImpl::set_execution(const ExecutionOptions& options) {
  torch::NoGradGuard no_grad;
  const auto convert = [&](torch::Tensor& t) {
    if (!t.defined() || !t.is_floating_point()) return;
    auto v = t.to(options.dtype);
    if (t.dim() == 4)
      v = v.contiguous(options.channels_last ? at::MemoryFormat::ChannelsLast
                                             : at::MemoryFormat::Contiguous);
    if (!v.is_same(t)) t.set_data(v);
  };
  for (auto& p : parameters()) convert(p);
  for (auto& b : buffers()) convert(b);
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* block = dynamic_cast<NAFBlockImpl*>(m.get())) block->fused = options.fused;
  execution_ = options;
}

torch::Tensor DeblurNetImpl::to_execution(const torch::Tensor& x) const {
  if (execution_.is_default()) return x;
  auto v = x.to(execution_.dtype);
  return execution_.channels_last ? v.contiguous(at::MemoryFormat::ChannelsLast) : v;
}

}  // namespace samdeblur::models
