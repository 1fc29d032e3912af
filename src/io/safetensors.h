#pragma once
// .safetensors parsing/serialisation (private to src/io; public entry points are in
// samdeblur/io/checkpoint.h). Format: https://github.com/huggingface/safetensors
//   u64 LE header length N | N bytes JSON {name: {dtype, shape, data_offsets:[b,e]},
//   "__metadata__": {...}} | data
#include <cstdint>
#include <string>
#include <vector>

#include "samdeblur/io/checkpoint.h"

namespace samdeblur::io::detail {

// True when the bytes plausibly start a safetensors file (length prefix then '{').
bool looks_like_safetensors(const uint8_t* data, size_t size);
// Tensors in header order; every offset and size is validated against the data.
StateDict parse_safetensors(const uint8_t* data, size_t size, const std::string& name);
std::vector<uint8_t> safetensors_bytes(const StateDict& sd, const std::string& name);

}  // namespace samdeblur::io::detail
