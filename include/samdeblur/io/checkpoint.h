#pragma once
// Checkpoint I/O without Python: PyTorch .pth/.pt (torch.save zip format, read through a
// restricted unpickler that never executes code) and .safetensors, plus state-dict loading
// into torch::nn::Module with a report of every problem at once.
//
// Mirrors basicsr/models/base_model.py (load_network / save_network): checkpoints are
// {'params': OrderedDict, 'params_ema': ...}; a leading "module." is stripped from keys.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace samdeblur::io {

// Tensor name -> tensor, in file order. Tensors are CPU, contiguous and own their memory
// (views that shared a storage in the file are independent copies).
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// Reads a .pth/.pt (zip written by torch.save, torch >= 1.6) or .safetensors file; the
// format is detected from the content, not the extension.
//  - a bare (Ordered)dict of tensors is returned as is;
//  - a dict holding `param_key` (e.g. BasicSR's {'params': ..., 'params_ema': ...}) returns
//    that dict; when `param_key` is absent but "params" is present, "params" is used with a
//    warning (BasicSR's fallback); otherwise FileError listing the top-level keys;
//  - anything else (nested dicts such as {'model': {...}}, non-tensor values) is a FileError
//    naming the keys.
// Pickled globals outside the allow-list raise Error "refusing to load global 'mod.name' from
// <file>". A path that is a directory or another non-regular file is a FileError naming it.
// Floating-point tensors holding NaN or Inf are refused with a FileError listing every such
// tensor and its count of non-finite values, unless ReadOptions::allow_nonfinite is set
// (then the same list is logged as a warning). The official code loads them silently.
StateDict load_state_dict_file(const std::string& path, const std::string& param_key = "params");
// Same for an in-memory file image; `name` is used in messages.
StateDict load_state_dict_bytes(const uint8_t* data, size_t size, const std::string& name,
                                const std::string& param_key = "params");

struct ReadOptions {
  std::string param_key = "params";
  bool allow_nonfinite = false;  // load NaN/Inf weights with a warning instead of refusing
};
StateDict load_state_dict_file(const std::string& path, const ReadOptions& options);
StateDict load_state_dict_bytes(const uint8_t* data, size_t size, const std::string& name,
                                const ReadOptions& options);

// Floating-point tensors of `sd` holding NaN or +-Inf, in order, with their counts.
struct NonFinite {
  std::string name;
  int64_t count = 0;
  int64_t numel = 0;
};
std::vector<NonFinite> count_nonfinite(const StateDict& sd);

struct LoadReport {
  std::vector<std::string> missing;         // in the module, not in the checkpoint
  std::vector<std::string> unexpected;      // in the checkpoint, not in the module
  std::vector<std::string> shape_mismatch;  // "name: checkpoint [a, b] vs model [c, d]"
  bool ok() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
};

// Copies tensors into module.named_parameters() + named_buffers() under NoGradGuard,
// stripping one leading "module." from every checkpoint key and converting dtypes to the
// destination's (e.g. fp16 -> fp32).
// strict: any problem -> one Error (naming source_name) listing ALL missing, unexpected and
//         shape-mismatched keys; nothing is copied.
// non-strict: copies the intersection with matching shapes, logs a warning with the rest.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd, bool strict,
                           const std::string& source_name);

// Writes a torch.save-compatible .pth (zip, stored entries, pickle protocol 2) holding
// {param_key: OrderedDict(sd)}, as BasicSR's save_network does; atomic. Readable by
// Python torch.load and by load_state_dict_file.
void save_state_dict_file(const std::string& path, const StateDict& sd,
                          const std::string& param_key = "params");

// Writes a .safetensors file (tensors in the given order, no metadata); atomic.
void save_safetensors(const std::string& path, const StateDict& sd);

}  // namespace samdeblur::io
