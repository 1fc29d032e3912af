#pragma once
// How a deblurring network runs, as opposed to what it computes (ext: no official
// counterpart). ExecutionOptions{} is the exact path: float32, NCHW, the ATen
// composition that mirrors the reference (training's default, and inference's with
// memory format "contiguous"). The other settings change results only by float
// rounding (channels-last, fused kernels) or by bfloat16 rounding (precision bf16,
// inference only). Inference (sdb-eval's val.memory_format, sdb-deblur) defaults to
// memory format "auto": channels-last + fused kernels on the CPU, where a whole 720p
// evaluation runs 1.4-1.5x faster than on the exact path; see README "Performance".
#include <torch/torch.h>

#include <string>

namespace samdeblur::models {

struct ExecutionOptions {
  // Activations and 4-D weights in channels-last (NHWC) order end to end: the
  // network converts its input once and no op inside changes the layout.
  bool channels_last = false;
  // NAFBlocks use the fused kernels when no gradient is needed: models/fused_forward.h
  // for channels-last float32 / bfloat16 activations, models/fused.h for NCHW float32.
  bool fused = false;
  // kFloat (exact) or kBFloat16: weights and activations in bfloat16 (oneDNN
  // convolutions), LayerNorm2d statistics, the MAP unit and the final residual
  // in float32; the output is float32. Inference only.
  torch::ScalarType dtype = torch::kFloat;

  bool is_default() const { return !channels_last && !fused && dtype == torch::kFloat; }
  std::string precision() const { return dtype == torch::kBFloat16 ? "bf16" : "fp32"; }
  std::string memory_format() const { return channels_last ? "channels_last" : "contiguous"; }
};

// "fp32" | "bf16" -> dtype; "contiguous" | "channels_last" | "auto" -> layout
// (channels_last also turns on the fused kernels, in either dtype; auto is channels_last
// on a CPU `device` and contiguous elsewhere: the fused kernels are CPU kernels and
// channels-last has not been measured on CUDA). `what` names the key or flag in errors
// (ConfigError listing the valid values).
torch::ScalarType parse_precision(const std::string& value, const std::string& what);
ExecutionOptions parse_execution(const std::string& precision, const std::string& memory_format,
                                 const std::string& what,
                                 const torch::Device& device = torch::kCPU);
// Inference's default memory format (sdb-eval's val.memory_format, sdb-deblur).
inline constexpr const char* kInferenceMemoryFormat = "auto";

// True when /proc/cpuinfo-style `flags` text lists avx512_bf16 or amx_bf16.
bool cpuinfo_has_bf16(const std::string& cpuinfo);
// This machine's CPU (reads /proc/cpuinfo once; false when unreadable).
bool cpu_supports_bf16();
// Throws Error when `options` cannot run on `device`: bf16 on a CPU without
// AVX512-BF16 / AMX-BF16 (oneDNN would emulate it, slower than fp32).
void check_execution_supported(const ExecutionOptions& options, const torch::Device& device);

}  // namespace samdeblur::models
