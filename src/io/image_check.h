#pragma once
// Complete-decoding checks for JPEG and PNG, run before cv::imdecode (which only warns
// about a truncated JPEG or a damaged PNG and then returns partly uninitialised pixels).
#include <cstddef>
#include <cstdint>
#include <string>

namespace samdeblur::io::detail {

// Decodes JPEG (libjpeg) and PNG (libpng, CRCs checked) data to the last row and the
// end-of-image marker / IEND chunk, discarding the pixels (JPEG at 1/8 scale: the whole
// entropy-coded data is still decoded). Throws FileError naming `name`:
//   "truncated or corrupt JPEG: <libjpeg message>"  (fatal errors and every corrupt-data
//                                                     warning, e.g. premature end of file)
//   (libjpeg's "extraneous bytes before marker" warning, JWRN_EXTRANEOUS_DATA, which
//   some cameras trigger on intact images, is accepted and logged as a warning naming
//   `name`)
//   "truncated or corrupt PNG: <libpng message>"
//   "image of W x H pixels exceeds the limit of N"    (OpenCV's CV_IO_MAX_IMAGE_PIXELS)
// Other formats (by signature) are left to OpenCV and pass unchecked.
void check_image_complete(const uint8_t* data, size_t size, const std::string& name);

// The decompression-bomb limit OpenCV's imdecode applies: $CV_IO_MAX_IMAGE_PIXELS or 2^30.
uint64_t max_image_pixels();

}  // namespace samdeblur::io::detail
