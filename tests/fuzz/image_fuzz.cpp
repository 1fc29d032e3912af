// libFuzzer target: image decoding with the complete-decoding check (src/io/image.cpp,
// src/io/image_check.cpp: the one-pass decode, the check before cv::imdecode) and the
// structural check of io::check_image_file. The first byte selects colour or grayscale.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../../src/io/image_check.h"
#include "samdeblur/core/error.h"
#include "samdeblur/io/image.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("CV_IO_MAX_IMAGE_PIXELS", "4000000", 1);  // keep each input's memory small
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool gray = data[0] & 1;
  try {
    samdeblur::io::detail::check_image_structure(data + 1, size - 1, "fuzz.img");
  } catch (const samdeblur::Error&) {
  }
  try {
    samdeblur::io::decode_image_bgr(std::vector<uint8_t>(data + 1, data + size), "fuzz.img", gray);
  } catch (const samdeblur::Error&) {
  }
  return 0;
}
