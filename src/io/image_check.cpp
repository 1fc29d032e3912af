#include "image_check.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
// jpeglib.h needs size_t and FILE declared first, jerror.h needs jconfig.h's macros.
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"

namespace samdeblur::io::detail {
namespace {

// ---- JPEG ----
// libjpeg reports fatal errors through error_exit (we longjmp back) and recoverable
// corruption as warnings (emit_message with level -1), after which it substitutes data:
// a truncated scan is padded with zeros, which is how a cut file "decodes".
struct JpegErr {
  jpeg_error_mgr mgr;  // first member: libjpeg passes a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  char extraneous_message[JMSG_LENGTH_MAX];  // the first JWRN_EXTRANEOUS_DATA warning
  bool extraneous;
  bool failed;
  bool too_large;
  uint64_t width, height;
};

bool is_corrupt_data_warning(int code) {
  switch (code) {
#if JPEG_LIB_VERSION >= 70 || defined(D_ARITH_CODING_SUPPORTED)
    case JWRN_ARITH_BAD_CODE:
#endif
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      return true;
    default:
      // e.g. an unknown JFIF revision or Adobe transform, a bad ICC marker, and
      // JWRN_EXTRANEOUS_DATA (junk bytes before a marker, written by some cameras;
      // the bytes are skipped and the image data stay intact: accepted with a warning).
      return false;
  }
}

void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  err->failed = true;
  std::longjmp(err->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<JpegErr*>(cinfo->err);
  cinfo->err->num_warnings++;
  if (cinfo->err->msg_code == JWRN_EXTRANEOUS_DATA && !err->extraneous) {
    (*cinfo->err->format_message)(cinfo, err->extraneous_message);
    err->extraneous = true;
    return;
  }
  if (is_corrupt_data_warning(cinfo->err->msg_code) && !err->failed) {
    (*cinfo->err->format_message)(cinfo, err->message);
    err->failed = true;
    std::longjmp(err->jump, 1);  // stop at the first corrupt-data warning
  }
}

void jpeg_no_output(j_common_ptr) {}  // the library never writes to stderr

// Only POD locals between setjmp and longjmp; libjpeg owns every allocation.
void run_jpeg_check(const uint8_t* data, size_t size, uint64_t limit, JpegErr* err) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&err->mgr);
  err->mgr.error_exit = jpeg_on_error;
  err->mgr.emit_message = jpeg_on_message;
  err->mgr.output_message = jpeg_no_output;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  err->width = cinfo.image_width;
  err->height = cinfo.image_height;
  if (err->width * err->height > limit) {
    err->too_large = true;
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = 8;
  cinfo.dct_method = JDCT_IFAST;
  cinfo.do_fancy_upsampling = FALSE;
  jpeg_start_decompress(&cinfo);
  const JDIMENSION stride = cinfo.output_width * static_cast<JDIMENSION>(cinfo.output_components);
  JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                              stride > 0 ? stride : 1, 1);
  while (cinfo.output_scanline < cinfo.output_height) jpeg_read_scanlines(&cinfo, row, 1);
  jpeg_finish_decompress(&cinfo);  // reads up to EOI; a missing EOI is JWRN_JPEG_EOF
  jpeg_destroy_decompress(&cinfo);
}

// ---- PNG ----
struct PngState {
  std::jmp_buf jump;
  char message[256];
  bool failed;
  bool too_large;
  uint64_t width, height;
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(st->message, sizeof st->message, "%s", msg ? msg : "unknown libpng error");
  st->failed = true;
  std::longjmp(st->jump, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // e.g. a known-incorrect sRGB profile

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* st = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > st->size - st->pos) png_error(png, "unexpected end of file");
  std::memcpy(out, st->data + st->pos, n);
  st->pos += n;
}

void run_png_check(uint64_t limit, PngState* st) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(st->message, sizeof st->message, "out of memory");
    st->failed = true;
    return;
  }
  // Written after setjmp and read after a longjmp back: volatile.
  png_infop volatile info = nullptr;
  png_bytep volatile row = nullptr;
  if (setjmp(st->jump)) {
    if (row) png_free(png, row);
    png_infop info_copy = info;
    png_destroy_read_struct(&png, info_copy ? &info_copy : nullptr, nullptr);
    return;
  }
  info = png_create_info_struct(png);
  if (!info) png_error(png, "out of memory");
  png_set_read_fn(png, st, png_read_mem);
  // Critical-chunk CRC errors are fatal (libpng's default); check ancillary chunks too.
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  st->width = png_get_image_width(png, info);
  st->height = png_get_image_height(png, info);
  if (st->width * st->height > limit) {
    st->too_large = true;
    png_infop info_copy = info;
    png_destroy_read_struct(&png, &info_copy, nullptr);
    return;
  }
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_size_t rowbytes = png_get_rowbytes(png, info);
  row = static_cast<png_bytep>(png_malloc(png, rowbytes > 0 ? rowbytes : 1));
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < png_get_image_height(png, info); ++y)
      png_read_row(png, row, nullptr);
  png_read_end(png, nullptr);  // the remaining chunks' CRCs and IEND
  png_free(png, row);
  row = nullptr;
  png_infop info_copy = info;
  png_destroy_read_struct(&png, &info_copy, nullptr);
}

std::string too_large(uint64_t w, uint64_t h, uint64_t limit) {
  return "image of " + std::to_string(w) + " x " + std::to_string(h) +
         " pixels exceeds the limit of " + std::to_string(limit) +
         " pixels (CV_IO_MAX_IMAGE_PIXELS), refusing to decode it";
}

}  // namespace

uint64_t max_image_pixels() {
  const char* env = std::getenv("CV_IO_MAX_IMAGE_PIXELS");
  if (env && *env) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end && *end == '\0') return v;
  }
  return uint64_t{1} << 30;
}

void check_image_complete(const uint8_t* data, size_t size, const std::string& name) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  const uint64_t limit = max_image_pixels();
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
    JpegErr err{};
    run_jpeg_check(data, size, limit, &err);
    if (err.failed) throw FileError(name, std::string("truncated or corrupt JPEG: ") + err.message);
    if (err.too_large) throw FileError(name, too_large(err.width, err.height, limit));
    if (err.extraneous)
      log::warn(name + ": " + err.extraneous_message +
                " (skipped; the image data are complete, decoding it)");
  } else if (size >= 8 && std::memcmp(data, kPng, 8) == 0) {
    PngState st{};
    st.data = data;
    st.size = size;
    run_png_check(limit, &st);
    if (st.failed) throw FileError(name, std::string("truncated or corrupt PNG: ") + st.message);
    if (st.too_large) throw FileError(name, too_large(st.width, st.height, limit));
  }
}

}  // namespace samdeblur::io::detail
