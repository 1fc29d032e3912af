#pragma once
// Complete-decoding checks for JPEG and PNG (cv::imdecode only warns about a truncated
// JPEG or a damaged PNG and then returns partly uninitialised pixels), the one-pass
// checked decode that read_image_bgr uses, and a cheap structural check for checking a
// whole dataset before any output is written.
#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
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

// One pass instead of check_image_complete + cv::imdecode: decodes JPEG / PNG data with
// libjpeg / libpng (the libraries OpenCV's own decoders call, with the settings they use:
// JPEG islow DCT, fancy upsampling, BGR or grayscale output; PNG alpha stripped, palette
// and gray expanded, RGB -> BGR), checked to completion exactly as check_image_complete,
// into *out: the bytes cv::imdecode(IMREAD_COLOR / IMREAD_GRAYSCALE) gives (tested in
// tests/io/image_decode_test.cpp). Returns false, with the data checked to its end but
// *out untouched, where only OpenCV is known to give its exact result: a CMYK/YCCK JPEG,
// a JPEG with an APP1 (EXIF orientation) segment or without Huffman tables (MJPEG), a
// 16-bit PNG, a PNG with tRNS or eXIf, a grayscale read of a colour or gamma-tagged PNG,
// and every other format (not checked then). The caller then runs cv::imdecode.
// Throws FileError as check_image_complete.
bool decode_image_checked(const uint8_t* data, size_t size, bool grayscale, const std::string& name,
                          cv::Mat* out);

// Structure only, no pixel decoding (a few percent of a decode): a JPEG's marker segments
// up to the end-of-image marker (the entropy-coded data is scanned for markers, not
// decoded), a PNG's chunks up to IEND with every chunk's CRC, the pixel limit from the
// header. Throws FileError naming `name` ("truncated or corrupt JPEG: ...", "truncated or
// corrupt PNG: ...", "image of W x H pixels exceeds ..."). Returns false for other formats
// (nothing checked). Corrupt JPEG entropy data inside an intact structure passes here and
// is refused by the decode.
bool check_image_structure(const uint8_t* data, size_t size, const std::string& name);

// The decompression-bomb limit OpenCV's imdecode applies: $CV_IO_MAX_IMAGE_PIXELS or 2^30.
uint64_t max_image_pixels();

}  // namespace samdeblur::io::detail
