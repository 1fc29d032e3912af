#include "zip_util.h"

#include <zip.h>

#include <cstring>

#include "samdeblur/core/error.h"

namespace samdeblur::io::detail {
namespace {

std::string zip_error_text(zip_error_t* err) {
  const char* s = zip_error_strerror(err);
  return s ? std::string(s) : std::string("unknown libzip error");
}

}  // namespace

ZipReader::ZipReader(std::vector<uint8_t> bytes, std::string path)
    : bytes_(std::move(bytes)), path_(std::move(path)) {
  zip_error_t err;
  zip_error_init(&err);
  // libzip does not accept a null buffer even for size 0; an empty file is not a zip anyway.
  if (bytes_.empty()) throw FileError(path_, "empty file is not a zip archive");
  zip_source_t* src = zip_source_buffer_create(bytes_.data(), bytes_.size(), 0, &err);
  if (!src) {
    const std::string msg = zip_error_text(&err);
    zip_error_fini(&err);
    throw FileError(path_, "cannot create zip source: " + msg);
  }
  archive_ = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
  if (!archive_) {
    zip_source_free(src);
    const std::string msg = zip_error_text(&err);
    zip_error_fini(&err);
    throw FileError(path_, "not a valid zip archive: " + msg);
  }
  zip_error_fini(&err);
  const zip_int64_t n = zip_get_num_entries(archive_, 0);
  if (n < 0) {
    zip_discard(archive_);
    archive_ = nullptr;
    throw FileError(path_, "cannot list zip entries");
  }
  names_.reserve(static_cast<size_t>(n));
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(archive_, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
    names_.emplace_back(name ? name : "");
  }
}

ZipReader::~ZipReader() {
  if (archive_) zip_discard(archive_);
}

int64_t ZipReader::find(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int64_t>(i);
  return -1;
}

uint64_t ZipReader::size(int64_t index, uint64_t max_size) const {
  if (index < 0 || static_cast<size_t>(index) >= names_.size())
    throw FileError(path_, "zip entry index out of range");
  const std::string& name = names_[static_cast<size_t>(index)];
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(archive_, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
      !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE))
    throw FileError(path_, "cannot stat zip entry '" + name + "'");
  if (st.size > max_size)
    throw FileError(path_, "zip entry '" + name + "' declares " + std::to_string(st.size) +
                               " bytes, more than the limit of " + std::to_string(max_size));
  // Deflate expands at most ~1032:1; a larger claim is corrupt (or a zip bomb).
  if (st.size / 1032 > st.comp_size + 1024 || st.comp_size > bytes_.size())
    throw FileError(path_, "zip entry '" + name + "' has implausible sizes (" +
                               std::to_string(st.comp_size) + " compressed, " +
                               std::to_string(st.size) + " uncompressed)");
  return st.size;
}

void ZipReader::read_into(int64_t index, void* dst, uint64_t size) const {
  const std::string& name = names_.at(static_cast<size_t>(index));
  zip_file_t* f = zip_fopen_index(archive_, static_cast<zip_uint64_t>(index), 0);
  if (!f) throw FileError(path_, "cannot open zip entry '" + name + "': " + zip_strerror(archive_));
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  while (true) {
    // Ask for one byte more than expected at the end so overlong entries are detected.
    uint8_t extra = 0;
    const bool tail = done == size;
    const zip_int64_t got =
        tail ? zip_fread(f, &extra, 1)
             : zip_fread(f, out + done, std::min<uint64_t>(size - done, uint64_t{1} << 30));
    if (got < 0) {
      const std::string msg = zip_file_strerror(f);
      zip_fclose(f);
      throw FileError(path_, "cannot read zip entry '" + name + "': " + msg);
    }
    if (got == 0) break;
    if (tail) {
      zip_fclose(f);
      throw FileError(path_, "zip entry '" + name + "' is longer than its recorded size");
    }
    done += static_cast<uint64_t>(got);
  }
  zip_fclose(f);
  if (done != size)
    throw FileError(path_, "zip entry '" + name + "' is truncated: " + std::to_string(done) +
                               " of " + std::to_string(size) + " bytes");
}

std::vector<uint8_t> ZipReader::read_prefix(int64_t index, uint64_t n) const {
  const uint64_t total = size(index);
  std::vector<uint8_t> out(static_cast<size_t>(std::min(n, total)));
  const std::string& name = names_.at(static_cast<size_t>(index));
  zip_file_t* f = zip_fopen_index(archive_, static_cast<zip_uint64_t>(index), 0);
  if (!f) throw FileError(path_, "cannot open zip entry '" + name + "': " + zip_strerror(archive_));
  size_t done = 0;
  while (done < out.size()) {
    const zip_int64_t got = zip_fread(f, out.data() + done, out.size() - done);
    if (got < 0) {
      const std::string msg = zip_file_strerror(f);
      zip_fclose(f);
      throw FileError(path_, "cannot read zip entry '" + name + "': " + msg);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  zip_fclose(f);
  out.resize(done);
  return out;
}

std::vector<uint8_t> ZipReader::read(int64_t index, uint64_t max_size) const {
  std::vector<uint8_t> out(static_cast<size_t>(size(index, max_size)));
  read_into(index, out.data(), out.size());
  return out;
}

bool looks_like_zip(const uint8_t* data, size_t size) {
  return size >= 4 && data[0] == 'P' && data[1] == 'K' &&
         ((data[2] == 3 && data[3] == 4) || (data[2] == 5 && data[3] == 6));
}

std::vector<uint8_t> build_zip(
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries, bool compressed,
    const std::string& path) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(nullptr, 0, 0, &err);
  if (!src) throw FileError(path, "cannot create zip buffer: " + zip_error_text(&err));
  zip_t* za = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  if (!za) {
    zip_source_free(src);
    throw FileError(path, "cannot create zip archive: " + zip_error_text(&err));
  }
  zip_error_fini(&err);
  zip_source_keep(src);  // keep the buffer alive after zip_close so it can be read back
  auto fail = [&](const std::string& what) {
    const std::string msg = what + ": " + zip_strerror(za);
    zip_discard(za);
    zip_source_free(src);
    throw FileError(path, msg);
  };
  for (const auto& [name, data] : entries) {
    zip_source_t* s = zip_source_buffer(
        za, data.empty() ? static_cast<const void*>("") : static_cast<const void*>(data.data()),
        data.size(), 0);
    if (!s) fail("cannot add '" + name + "'");
    const zip_int64_t idx = zip_file_add(za, name.c_str(), s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    if (idx < 0) {
      zip_source_free(s);
      fail("cannot add '" + name + "'");
    }
    if (zip_set_file_compression(za, static_cast<zip_uint64_t>(idx),
                                 compressed ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0)
      fail("cannot set compression of '" + name + "'");
    // Fixed timestamps make the output reproducible.
    zip_file_set_dostime(za, static_cast<zip_uint64_t>(idx), 0, (1 << 5) | 1, 0);
  }
  if (zip_close(za) != 0) fail("cannot finalise zip archive");
  std::vector<uint8_t> out;
  if (zip_source_open(src) != 0) {
    zip_source_free(src);
    throw FileError(path, "cannot reopen zip buffer");
  }
  zip_source_seek(src, 0, SEEK_END);
  const zip_int64_t size = zip_source_tell(src);
  zip_source_seek(src, 0, SEEK_SET);
  if (size < 0) {
    zip_source_close(src);
    zip_source_free(src);
    throw FileError(path, "cannot size zip buffer");
  }
  out.resize(static_cast<size_t>(size));
  zip_int64_t done = 0;
  while (done < size) {
    const zip_int64_t got =
        zip_source_read(src, out.data() + done, static_cast<zip_uint64_t>(size - done));
    if (got <= 0) break;
    done += got;
  }
  zip_source_close(src);
  zip_source_free(src);
  if (done != size) throw FileError(path, "cannot read back zip buffer");
  return out;
}

}  // namespace samdeblur::io::detail
