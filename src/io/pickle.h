#pragma once
// Restricted unpickler for tensor checkpoints (private to src/io).
//
// Implements only the opcodes that torch.save (pickle protocol 2) emits for state
// dicts, plus the few protocol 3/4 ones that are harmless (FRAME, MEMOIZE,
// SHORT_BINUNICODE, BINBYTES, STACK_GLOBAL). It never executes anything: GLOBAL is
// resolved against a fixed allow-list (collections.OrderedDict, torch._utils
// rebuild functions, torch.*Storage, torch.device, builtins.set) and any other name
// raises Error "refusing to load global 'module.name' from <file>". REDUCE only
// applies the allow-listed callables, implemented here in C++.
//
// All objects live in an arena owned by PickleResult and refer to one another by raw
// pointers, so destruction is flat (no recursion, cycles are harmless). Stack, memo and
// object counts are bounded; every length is checked against the remaining input.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace samdeblur::io::detail {

struct PyObject {
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    Tuple,
    List,
    Dict,
    Global,
    Storage,
    Tensor
  };
  Kind kind = Kind::None;
  bool b = false;  // Bool: the value; Storage: a tensor already took over the bytes
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                         // Str, Bytes; Global: "module.name"
  std::vector<PyObject*> items;                          // Tuple, List
  std::vector<std::pair<PyObject*, PyObject*>> entries;  // Dict, insertion order
  std::unordered_map<std::string, size_t> str_keys;      // Dict: Str key -> index in entries
  torch::Tensor tensor;  // Tensor: the value; Storage: 1-d kUInt8 tensor of the raw bytes
  torch::ScalarType dtype = torch::kFloat;  // Storage element type

  // Dict lookup by string key; nullptr when absent or not a Dict.
  PyObject* get(const std::string& key) const;
};

const char* kind_name(PyObject::Kind kind);

struct PickleResult {
  std::vector<std::unique_ptr<PyObject>> arena;
  PyObject* root = nullptr;
};

struct UnpickleLimits {
  size_t max_objects = size_t{1} << 22;
  size_t max_stack = size_t{1} << 20;
  size_t max_memo = size_t{1} << 20;
};

// Called for BINPERSID with the persistent id (a Tuple for torch.save); returns the object
// (a Storage) allocated through `make`. Must throw Error on anything unexpected.
using PersistentLoad =
    std::function<PyObject*(PyObject* pid, const std::function<PyObject*()>& make)>;

PickleResult unpickle(const uint8_t* data, size_t size, const std::string& name,
                      const PersistentLoad& persistent_load, const UnpickleLimits& limits = {});

// dtype of a storage class name such as "torch.FloatStorage"; false when unknown.
bool storage_dtype(const std::string& global_name, torch::ScalarType* dtype);
// Inverse: "FloatStorage" etc.; throws Error for dtypes with no storage class.
std::string storage_class(torch::ScalarType dtype);

}  // namespace samdeblur::io::detail
