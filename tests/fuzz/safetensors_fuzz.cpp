// libFuzzer target: the .safetensors reader (src/io/safetensors.cpp) through the checkpoint
// entry point (non-finite values allowed, so that every parsed file reaches the end).
#include <cstddef>
#include <cstdint>

#include "../../src/io/safetensors.h"
#include "samdeblur/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    samdeblur::io::detail::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const samdeblur::Error&) {
  }
  return 0;
}
