// libFuzzer target: the zip reader (src/io/zip_util.cpp) and the .pth reader on top of it.
#include <cstddef>
#include <cstdint>

#include "../../src/io/zip_util.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    samdeblur::io::detail::ZipReader zip(std::vector<uint8_t>(data, data + size), "fuzz.zip");
    for (size_t i = 0; i < zip.names().size(); ++i) {
      try {
        zip.read_prefix(static_cast<int64_t>(i), 64);
        zip.read(static_cast<int64_t>(i), uint64_t{1} << 24);
      } catch (const samdeblur::Error&) {
      }
    }
  } catch (const samdeblur::Error&) {
  }
  try {
    samdeblur::io::ReadOptions options;
    options.allow_nonfinite = true;
    samdeblur::io::load_state_dict_bytes(data, size, "fuzz.pth", options);
  } catch (const samdeblur::Error&) {
  }
  return 0;
}
