#pragma once
// Compute precision of Segment Anything (ext: the official code runs float32, or float16 on
// CUDA). fp32 is the default and the exact path; bf16 runs the image encoder, prompt encoder
// and mask decoder in bfloat16 (weights and activations; the mask logits are returned in
// float32 and upsampled in float32), inference only, on CUDA or on CPUs with native bfloat16
// (AVX512-BF16 / AMX-BF16), where oneDNN's bf16 matrix products are about 3x faster than fp32.
// Same spelling as the deblurring networks' --precision (fp32 | bf16).
#include <torch/torch.h>

#include <string>

namespace samdeblur::sam {

enum class Precision { fp32, bf16 };

// "fp32" | "bf16"; ConfigError naming `what` (the flag or key) and the valid values otherwise.
Precision precision_from_name(const std::string& name, const std::string& what = "precision");
std::string precision_name(Precision precision);
// kFloat or kBFloat16.
torch::ScalarType precision_dtype(Precision precision);

// Throws Error when `precision` cannot run natively on `device`: bf16 on a CPU without
// AVX512-BF16 / AMX-BF16 (oneDNN would emulate it, slower than fp32). `cpu_bf16` defaults to
// models::cpu_supports_bf16() (models/execution.h; tests pass their own answer).
void check_precision_supported(Precision precision, const torch::Device& device);
void check_precision_supported(Precision precision, const torch::Device& device, bool cpu_bf16);

}  // namespace samdeblur::sam
