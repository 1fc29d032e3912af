#include "safetensors.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"

namespace samdeblur::io {
namespace detail {
namespace {

constexpr uint64_t kMaxHeader = uint64_t{100} << 20;  // as the reference implementation

const std::vector<std::pair<std::string, torch::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> table = {
      {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"F64", torch::kFloat64}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
      {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
      {"BOOL", torch::kBool},
  };
  return table;
}

}  // namespace

bool looks_like_safetensors(const uint8_t* data, size_t size) {
  if (size < 10) return false;
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t{data[k]} << (8 * k);
  return n >= 2 && n <= size - 8 && data[8] == '{';
}

namespace {

// One tensor of the header: its dtype, shape and byte range in the data buffer.
struct Entry {
  std::string key;
  torch::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// The JSON header of a safetensors file (8-byte little-endian length, then JSON);
// header_size receives the length.
nlohmann::ordered_json read_header(const uint8_t* data, size_t size, const std::string& name,
                                   uint64_t* header_size) {
  if (size < 8) throw FileError(name, "truncated safetensors file (no header length)");
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t{data[k]} << (8 * k);
  if (n > kMaxHeader)
    throw FileError(name, "safetensors header of " + std::to_string(n) + " bytes is too large");
  if (n > size - 8)
    throw FileError(name, "truncated safetensors header: declares " + std::to_string(n) +
                              " bytes, " + std::to_string(size - 8) + " present");
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(data + 8, data + 8 + n);
  } catch (const std::exception& e) {
    throw FileError(name, std::string("invalid safetensors JSON header: ") + e.what());
  }
  if (!header.is_object()) throw FileError(name, "safetensors header is not a JSON object");
  *header_size = n;
  return header;
}

// One header entry, checked: known dtype, a shape of non-negative integers, and
// data_offsets inside the body whose length matches the shape.
Entry parse_entry(const std::string& key, const nlohmann::ordered_json& info, uint64_t body_size,
                  const std::string& name) {
  auto bad = [&](const std::string& what) {
    return FileError(name, "tensor '" + key + "': " + what);
  };
  if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
      !info.contains("data_offsets"))
    throw bad("entry needs 'dtype', 'shape' and 'data_offsets'");
  const auto& jd = info["dtype"];
  const auto& js = info["shape"];
  const auto& jo = info["data_offsets"];
  if (!jd.is_string()) throw bad("dtype is not a string");
  const std::string dt = jd.get<std::string>();
  torch::ScalarType type{};
  bool found = false;
  for (const auto& [s, t] : dtype_table())
    if (s == dt) {
      type = t;
      found = true;
    }
  if (!found) throw bad("unsupported dtype '" + dt + "'");
  if (!js.is_array() || js.size() > 64) throw bad("shape is not an array of at most 64 dims");
  std::vector<int64_t> shape;
  unsigned __int128 numel = 1;
  for (const auto& d : js) {
    if (!d.is_number_unsigned()) throw bad("shape holds a non-integer or negative value");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw bad("dimension too large");
    shape.push_back(static_cast<int64_t>(v));
    numel *= v;
    if (numel > body_size) numel = static_cast<unsigned __int128>(body_size) + 1;  // saturate
  }
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
      !jo[1].is_number_unsigned())
    throw bad("data_offsets is not [begin, end]");
  const uint64_t b = jo[0].get<uint64_t>();
  const uint64_t e = jo[1].get<uint64_t>();
  if (b > e || e > body_size)
    throw bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] outside the " +
              std::to_string(body_size) + " data bytes");
  const size_t itemsize = c10::elementSize(type);
  if (numel * itemsize != e - b)
    throw bad("shape " + c10::str(c10::IntArrayRef(shape)) + " of " + dt + " does not match " +
              std::to_string(e - b) + " data bytes");
  return {key, type, std::move(shape), b, e};
}

// The specification (and its reference reader, safetensors/src/tensor.rs validate()):
// sorted by offsets, the byte ranges tile the data buffer exactly: no overlap (which would
// let a small file expand into many large tensors), no gap, nothing after the last one.
// Checked before any tensor is allocated.
void check_ranges_tile_body(const std::vector<Entry>& entries, uint64_t body_size,
                            const std::string& name) {
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* l, const Entry* r) {
    return l->begin != r->begin ? l->begin < r->begin : l->end < r->end;
  });
  uint64_t expected = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    auto range = [](const Entry* x) {
      return "'" + x->key + "' [" + std::to_string(x->begin) + ", " + std::to_string(x->end) + "]";
    };
    if (e->begin < expected)
      throw FileError(name, "tensor data ranges overlap: " + range(prev) + " and " + range(e));
    if (e->begin > expected)
      throw FileError(name, "gap in tensor data: bytes [" + std::to_string(expected) + ", " +
                                std::to_string(e->begin) + ") before " + range(e) +
                                " belong to no tensor");
    expected = e->end;
    prev = e;
  }
  if (expected != body_size)
    throw FileError(name, "tensor data covers " + std::to_string(expected) + " of the " +
                              std::to_string(body_size) +
                              " data bytes (trailing bytes belong to no tensor)");
}

}  // namespace

StateDict parse_safetensors(const uint8_t* data, size_t size, const std::string& name) {
  uint64_t n = 0;
  const nlohmann::ordered_json header = read_header(data, size, name, &n);
  const uint8_t* body = data + 8 + n;
  const uint64_t body_size = size - 8 - n;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") continue;
    entries.push_back(parse_entry(item.key(), item.value(), body_size, name));
  }
  check_ranges_tile_body(entries, body_size, name);
  StateDict out;
  for (const auto& en : entries) {
    const torch::ScalarType load_type = en.type == torch::kBool ? torch::kUInt8 : en.type;
    torch::Tensor t = torch::empty(en.shape, torch::TensorOptions().dtype(load_type));
    if (en.end > en.begin) std::memcpy(t.data_ptr(), body + en.begin, en.end - en.begin);
    if (en.type == torch::kBool) t = t.ne(0);
    out.emplace_back(en.key, t);
  }
  return out;
}

std::vector<uint8_t> safetensors_bytes(const StateDict& sd, const std::string& name) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<torch::Tensor> tensors;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : sd) {
    std::string dt;
    for (const auto& [s, t] : dtype_table())
      if (t == tensor.scalar_type()) dt = s;
    if (dt.empty())
      throw FileError(name, "tensor '" + key + "': dtype " + c10::toString(tensor.scalar_type()) +
                                " cannot be written to safetensors");
    if (header.contains(key)) throw FileError(name, "duplicate tensor name '" + key + "'");
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[key] = {
        {"dtype", dt}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    tensors.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the reference pads the header to 8 bytes
  const uint64_t header_len = text.size();
  std::vector<uint8_t> out(8 + text.size() + offset);
  for (int k = 0; k < 8; ++k)
    out[static_cast<size_t>(k)] = static_cast<uint8_t>((header_len >> (8 * k)) & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t pos = 8 + text.size();
  for (const auto& t : tensors) {
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (nbytes > 0) std::memcpy(out.data() + pos, t.data_ptr(), nbytes);
    pos += nbytes;
  }
  return out;
}

}  // namespace detail

void save_safetensors(const std::string& path, const StateDict& sd) {
  const std::vector<uint8_t> bytes = detail::safetensors_bytes(sd, path);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace samdeblur::io
