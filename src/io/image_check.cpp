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
#include <zlib.h>

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

// What a decode run is asked for and what it did. Lives in the caller's frame, so a
// longjmp back into run_jpeg / run_png skips no destructor.
struct Job {
  bool want_pixels = false;  // decode into *out where our decode equals cv::imdecode's
  bool grayscale = false;
  cv::Mat* out = nullptr;
  bool decoded = false;       // *out holds the image
  bool alloc_failed = false;  // *out could not be allocated
};

bool has_app1(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1) return true;
  return false;
}

// OpenCV's decoder reads EXIF orientation from APP1, loads default Huffman tables when a
// (Motion-)JPEG has none and converts CMYK itself: those are left to it.
bool jpeg_fast_path(const jpeg_decompress_struct& cinfo) {
  const bool tables = cinfo.ac_huff_tbl_ptrs[0] || cinfo.ac_huff_tbl_ptrs[1] ||
                      cinfo.dc_huff_tbl_ptrs[0] || cinfo.dc_huff_tbl_ptrs[1];
  return (cinfo.num_components == 1 || cinfo.num_components == 3) && tables && !has_app1(cinfo);
}

// Only POD locals between setjmp and longjmp; libjpeg owns every allocation.
void run_jpeg(const uint8_t* data, size_t size, uint64_t limit, JpegErr* err, Job* job) {
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
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 16);  // only to see whether there is one
  jpeg_read_header(&cinfo, TRUE);
  err->width = cinfo.image_width;
  err->height = cinfo.image_height;
  if (err->width * err->height > limit) {
    err->too_large = true;
    jpeg_destroy_decompress(&cinfo);
    return;
  }
  if (job->want_pixels && jpeg_fast_path(cinfo)) {
    // OpenCV's settings: libjpeg's defaults (islow DCT, fancy upsampling, full scale);
    // BGR straight from libjpeg-turbo equals its RGB output with channels swapped.
    cinfo.out_color_space = job->grayscale ? JCS_GRAYSCALE : JCS_EXT_BGR;
    jpeg_start_decompress(&cinfo);
    try {
      job->out->create(static_cast<int>(cinfo.output_height), static_cast<int>(cinfo.output_width),
                       job->grayscale ? CV_8UC1 : CV_8UC3);
    } catch (...) {
      job->alloc_failed = true;
      jpeg_destroy_decompress(&cinfo);
      return;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = job->out->ptr(static_cast<int>(cinfo.output_scanline));
      jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);  // reads up to EOI; a missing EOI is JWRN_JPEG_EOF
    jpeg_destroy_decompress(&cinfo);
    job->decoded = true;
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

// OpenCV's PNG decoder applies gamma for a grayscale read of colour data, reads EXIF
// orientation (eXIf), expands tRNS and scales 16-bit samples: those are left to it.
bool png_fast_path(png_structp png, png_infop info, bool grayscale) {
  const int depth = png_get_bit_depth(png, info);
  const int type = png_get_color_type(png, info);
  if (depth > 8 || png_get_valid(png, info, PNG_INFO_tRNS)) return false;
#ifdef PNG_INFO_eXIf
  if (png_get_valid(png, info, PNG_INFO_eXIf)) return false;
#endif
  if (grayscale)
    return type == PNG_COLOR_TYPE_GRAY &&
           !png_get_valid(png, info, PNG_INFO_gAMA | PNG_INFO_sRGB | PNG_INFO_iCCP | PNG_INFO_cHRM);
  return true;
}

// The transformations OpenCV's decoder sets for an 8-bit colour / grayscale image.
void png_set_opencv_transforms(png_structp png, png_infop info, bool grayscale) {
  const int depth = png_get_bit_depth(png, info);
  const int type = png_get_color_type(png, info);
  png_set_strip_alpha(png);
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (grayscale) return;  // a plain gray image (png_fast_path)
  if (type & PNG_COLOR_MASK_COLOR)
    png_set_bgr(png);
  else
    png_set_gray_to_rgb(png);
}

void run_png(uint64_t limit, PngState* st, Job* job) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(st->message, sizeof st->message, "out of memory");
    st->failed = true;
    return;
  }
  // Written after setjmp and read after a longjmp back: volatile.
  png_infop volatile info = nullptr;
  png_infop volatile end_info = nullptr;
  png_bytep volatile row = nullptr;
  if (setjmp(st->jump)) {
    if (row) png_free(png, row);
    png_infop info_copy = info, end_copy = end_info;
    png_destroy_read_struct(&png, info_copy ? &info_copy : nullptr, end_copy ? &end_copy : nullptr);
    return;
  }
  info = png_create_info_struct(png);
  if (!info) png_error(png, "out of memory");
  end_info = png_create_info_struct(png);
  if (!end_info) png_error(png, "out of memory");
  png_set_read_fn(png, st, png_read_mem);
  // Critical-chunk CRC errors are fatal (libpng's default); check ancillary chunks too.
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  st->width = png_get_image_width(png, info);
  st->height = png_get_image_height(png, info);
  if (st->width * st->height > limit) {
    st->too_large = true;
    png_infop info_copy = info, end_copy = end_info;
    png_destroy_read_struct(&png, &info_copy, &end_copy);
    return;
  }
  const bool fast = job->want_pixels && png_fast_path(png, info, job->grayscale);
  if (fast) png_set_opencv_transforms(png, info, job->grayscale);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_size_t rowbytes = png_get_rowbytes(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  if (fast) {
    const int channels = job->grayscale ? 1 : 3;
    if (rowbytes != static_cast<png_size_t>(st->width) * static_cast<png_size_t>(channels))
      png_error(png, "unexpected row size after the colour transformations");
    try {
      job->out->create(static_cast<int>(height), static_cast<int>(st->width),
                       CV_MAKETYPE(CV_8U, channels));
    } catch (...) {
      job->alloc_failed = true;
      png_infop info_copy = info, end_copy = end_info;
      png_destroy_read_struct(&png, &info_copy, &end_copy);
      return;
    }
    // As png_read_image: every pass writes its pixels into the final rows.
    for (int pass = 0; pass < passes; ++pass)
      for (png_uint_32 y = 0; y < height; ++y)
        png_read_row(png, job->out->ptr(static_cast<int>(y)), nullptr);
  } else {
    row = static_cast<png_bytep>(png_malloc(png, rowbytes > 0 ? rowbytes : 1));
    for (int pass = 0; pass < passes; ++pass)
      for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, row, nullptr);
    png_free(png, row);
    row = nullptr;
  }
  png_read_end(png, end_info);  // the remaining chunks' CRCs and IEND
  job->decoded = fast;
#ifdef PNG_INFO_eXIf
  if (png_get_valid(png, end_info, PNG_INFO_eXIf)) job->decoded = false;  // EXIF after IDAT
#endif
  png_infop info_copy = info, end_copy = end_info;
  png_destroy_read_struct(&png, &info_copy, &end_copy);
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

namespace {

const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff;
}

bool is_png(const uint8_t* data, size_t size) {
  return size >= 8 && std::memcmp(data, kPngSignature, 8) == 0;
}

// Runs the JPEG / PNG decoder for `job` and turns its outcome into FileErrors.
void run_checked(const uint8_t* data, size_t size, const std::string& name, Job* job) {
  const uint64_t limit = max_image_pixels();
  if (is_jpeg(data, size)) {
    JpegErr err{};
    run_jpeg(data, size, limit, &err, job);
    if (err.failed) throw FileError(name, std::string("truncated or corrupt JPEG: ") + err.message);
    if (err.too_large) throw FileError(name, too_large(err.width, err.height, limit));
    if (job->alloc_failed)
      throw FileError(name, "cannot allocate a " + std::to_string(err.width) + " x " +
                                std::to_string(err.height) + " image");
    if (err.extraneous)
      log::warn(name + ": " + err.extraneous_message +
                " (skipped; the image data are complete, decoding it)");
  } else if (is_png(data, size)) {
    PngState st{};
    st.data = data;
    st.size = size;
    run_png(limit, &st, job);
    if (st.failed) throw FileError(name, std::string("truncated or corrupt PNG: ") + st.message);
    if (st.too_large) throw FileError(name, too_large(st.width, st.height, limit));
    if (job->alloc_failed)
      throw FileError(name, "cannot allocate a " + std::to_string(st.width) + " x " +
                                std::to_string(st.height) + " image");
  }
}

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

// ---- structure only ----

[[noreturn]] void jpeg_broken(const std::string& name, const std::string& what) {
  throw FileError(name, "truncated or corrupt JPEG: " + what);
}

// Past the entropy-coded data that starts at `pos`: the offset of the marker ending it
// (0xff followed by neither 0x00, a restart marker, nor another 0xff).
size_t skip_entropy_data(const uint8_t* data, size_t size, size_t pos, const std::string& name) {
  while (true) {
    const void* ff = pos < size ? std::memchr(data + pos, 0xff, size - pos) : nullptr;
    if (!ff) jpeg_broken(name, "the file ends inside the image data (no end-of-image marker)");
    pos = static_cast<size_t>(static_cast<const uint8_t*>(ff) - data);
    if (pos + 1 >= size)
      jpeg_broken(name, "the file ends inside the image data (no end-of-image marker)");
    const uint8_t next = data[pos + 1];
    if (next == 0x00 || (next >= 0xd0 && next <= 0xd7)) {
      pos += 2;  // a stuffed 0xff byte or a restart marker: still image data
    } else if (next == 0xff) {
      pos += 1;  // fill byte
    } else {
      return pos;
    }
  }
}

// Walks the marker segments from after SOI to EOI, as libjpeg's marker reader does
// (bytes before a marker are skipped, as libjpeg does with a warning).
void check_jpeg_structure(const uint8_t* data, size_t size, const std::string& name,
                          uint64_t limit) {
  size_t pos = 2;
  bool frame = false, scan = false;
  while (true) {
    while (pos < size && data[pos] != 0xff) ++pos;  // extraneous bytes
    while (pos < size && data[pos] == 0xff) ++pos;  // the marker's 0xff and fill bytes
    if (pos >= size) jpeg_broken(name, "the file ends before the end-of-image marker");
    const uint8_t marker = data[pos++];
    if (marker == 0xd9) {  // EOI
      if (!scan) jpeg_broken(name, "end-of-image marker before any image data");
      return;
    }
    // No length: TEM, restart markers; 0xff 0x00 is skipped like other extraneous bytes.
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker == 0xd8) jpeg_broken(name, "a second start-of-image marker");
    if (pos + 2 > size) jpeg_broken(name, "the file ends inside a marker segment");
    const size_t length = size_t{data[pos]} << 8 | data[pos + 1];
    if (length < 2) jpeg_broken(name, "marker segment of length " + std::to_string(length));
    if (pos + length > size) jpeg_broken(name, "the file ends inside a marker segment");
    const bool sof =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      if (length < 8) jpeg_broken(name, "frame header too short");
      const uint64_t h = uint64_t{data[pos + 3]} << 8 | data[pos + 4];
      const uint64_t w = uint64_t{data[pos + 5]} << 8 | data[pos + 6];
      if (w * h > limit) throw FileError(name, too_large(w, h, limit));
      frame = true;
    }
    pos += length;
    if (marker == 0xda) {  // SOS: the entropy-coded data follows
      if (!frame) jpeg_broken(name, "image data before the frame header");
      scan = true;
      pos = skip_entropy_data(data, size, pos, name);
    }
  }
}

[[noreturn]] void png_broken(const std::string& name, const std::string& what) {
  throw FileError(name, "truncated or corrupt PNG: " + what);
}

// Every chunk from IHDR to IEND: complete, with a matching CRC.
void check_png_structure(const uint8_t* data, size_t size, const std::string& name,
                         uint64_t limit) {
  size_t pos = 8;
  bool header = false, image_data = false;
  while (true) {
    if (pos + 12 > size) png_broken(name, "the file ends before the IEND chunk");
    const uint32_t length = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    const std::string type_name(reinterpret_cast<const char*>(type), 4);
    for (int k = 0; k < 4; ++k) {
      const int letter = type[k] | 0x20;  // ASCII letters only, either case
      if (letter < 'a' || letter > 'z')
        png_broken(name, "invalid chunk type at byte " + std::to_string(pos));
    }
    if (length > 0x7fffffffu) png_broken(name, "chunk " + type_name + " has an invalid length");
    if (length > size - pos - 12)
      png_broken(name, "the file ends inside the " + type_name + " chunk");
    const uint8_t* body = data + pos + 8;
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + length);
    if (crc != be32(body + length)) png_broken(name, "CRC error in the " + type_name + " chunk");
    if (!header) {
      if (type_name != "IHDR" || length != 13) png_broken(name, "the first chunk is not IHDR");
      const uint64_t w = be32(body), h = be32(body + 4);
      if (w * h > limit) throw FileError(name, too_large(w, h, limit));
      header = true;
    } else if (type_name == "IDAT") {
      image_data = true;
    } else if (type_name == "IEND") {
      if (!image_data) png_broken(name, "no IDAT chunk before IEND");
      return;
    }
    pos += 12 + size_t{length};
  }
}

}  // namespace

void check_image_complete(const uint8_t* data, size_t size, const std::string& name) {
  Job job;  // no pixels
  run_checked(data, size, name, &job);
}

bool decode_image_checked(const uint8_t* data, size_t size, bool grayscale, const std::string& name,
                          cv::Mat* out) {
  cv::Mat decoded;
  Job job;
  job.want_pixels = true;
  job.grayscale = grayscale;
  job.out = &decoded;
  run_checked(data, size, name, &job);
  if (!job.decoded) return false;
  *out = decoded;
  return true;
}

bool check_image_structure(const uint8_t* data, size_t size, const std::string& name) {
  if (is_jpeg(data, size)) {
    check_jpeg_structure(data, size, name, max_image_pixels());
    return true;
  }
  if (is_png(data, size)) {
    check_png_structure(data, size, name, max_image_pixels());
    return true;
  }
  return false;
}

}  // namespace samdeblur::io::detail
