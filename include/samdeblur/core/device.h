#pragma once
// Device selection shared by the apps, the evaluator and the trainer.
#include <torch/torch.h>

#include <string>

namespace samdeblur {

// Parses "cpu", "cuda", "cuda:N"; throws Error naming --device when the text
// is not a device, or CUDA (or device N) is requested but absent.
torch::Device parse_device(const std::string& text);

}  // namespace samdeblur
