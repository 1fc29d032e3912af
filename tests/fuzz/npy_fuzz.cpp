// libFuzzer target: .npy parsing and .npz (zip of .npy) reading, src/io/npy.cpp.
#include <cstddef>
#include <cstdint>

#include "samdeblur/core/error.h"
#include "samdeblur/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    if (size >= 2 && data[0] == 'P' && data[1] == 'K')
      samdeblur::io::parse_npz(std::vector<uint8_t>(data, data + size), "fuzz.npz");
    else
      samdeblur::io::parse_npy(data, size, "fuzz.npy");
  } catch (const samdeblur::Error&) {
  }
  return 0;
}
