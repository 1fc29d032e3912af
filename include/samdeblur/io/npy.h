#pragma once
// NumPy .npy / .npz reading and writing without Python.
//
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// Supported dtypes: |b1 (kBool), |i1, |u1, <i2, <i4, <i8, <f2, <f4, <f8 (also the
// '=' / '|' spellings numpy uses for single-byte types). Header versions 1.0, 2.0, 3.0.
// Fortran-ordered arrays are returned as C-contiguous tensors with the same shape.
// Big-endian, object, structured and other dtypes raise FileError naming path and dtype.
// Every size in a header is checked against the bytes actually present; truncated or
// corrupt input raises FileError (never a crash).
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace samdeblur::io {

// Reads one .npy file into a CPU tensor that owns its memory.
torch::Tensor read_npy(const std::string& path);
// Parses an in-memory .npy image; name_for_errors is used as the path in FileError.
torch::Tensor parse_npy(const uint8_t* data, size_t size, const std::string& name_for_errors);

// Reads every "<key>.npy" member of an .npz (np.savez stored or np.savez_compressed
// deflated). Members not ending in ".npy" are ignored.
std::map<std::string, torch::Tensor> read_npz(const std::string& path);
// The same for an in-memory .npz image; `name` is used in messages.
std::map<std::string, torch::Tensor> parse_npz(std::vector<uint8_t> bytes, const std::string& name);
// Reads one array; a missing key raises FileError listing the keys present.
// Every member's .npy header is read before the member is inflated: a member whose recorded
// size differs from what its header's shape and dtype need is refused (zip bombs).
torch::Tensor read_npz_array(const std::string& path, const std::string& key);

// What an .npz member must satisfy, checked on its .npy header before it is inflated.
struct NpyExpect {
  // The shape must end in these dimensions (-1: any), e.g. {H, W} for the masks of an
  // H x W image. Empty: any shape.
  std::vector<int64_t> trailing_shape;
  // Upper bound on the array's data bytes.
  uint64_t max_bytes = uint64_t{1} << 36;
};
torch::Tensor read_npz_array(const std::string& path, const std::string& key,
                             const NpyExpect& expect);

// Serialises a CPU tensor as a version 1.0 .npy image (C order, header padded to 64 bytes,
// as numpy.lib.format.write_array does). bfloat16 has no NumPy dtype and raises Error.
std::vector<uint8_t> npy_bytes(const torch::Tensor& tensor);
// Writes atomically (samdeblur::write_file_atomic).
void write_npy(const std::string& path, const torch::Tensor& tensor);
// Writes "<key>.npy" members in the given order, deflated when `compressed`; atomic.
void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, torch::Tensor>>& arrays, bool compressed);

}  // namespace samdeblur::io
