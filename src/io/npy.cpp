#include "samdeblur/io/npy.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "regular_file.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "zip_util.h"

namespace samdeblur::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct NpyDtype {
  torch::ScalarType type;
  size_t itemsize;
};

// Maps a numpy descr string ('<f4', '|b1', ...) to a torch dtype.
NpyDtype dtype_from_descr(const std::string& descr, const std::string& name) {
  if (descr.size() < 3) throw FileError(name, "unsupported .npy dtype '" + descr + "'");
  const char order = descr[0];
  const std::string code = descr.substr(1);
  static const std::vector<std::pair<std::string, NpyDtype>> table = {
      {"b1", {torch::kBool, 1}},    {"u1", {torch::kUInt8, 1}},   {"i1", {torch::kInt8, 1}},
      {"i2", {torch::kInt16, 2}},   {"i4", {torch::kInt32, 4}},   {"i8", {torch::kInt64, 8}},
      {"f2", {torch::kFloat16, 2}}, {"f4", {torch::kFloat32, 4}}, {"f8", {torch::kFloat64, 8}},
  };
  for (const auto& [c, dt] : table) {
    if (c != code) continue;
    const bool little = order == '<' || order == '=' || (order == '|' && dt.itemsize == 1) ||
                        (order == '>' && dt.itemsize == 1);
    if (order == '>' && dt.itemsize > 1)
      throw FileError(name, "big-endian .npy dtype '" + descr + "' is not supported");
    if (!little) break;
    return dt;
  }
  throw FileError(name, "unsupported .npy dtype '" + descr +
                            "' (supported: |b1 |i1 |u1 <i2 <i4 <i8 <f2 <f4 <f8)");
}

std::string descr_from_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kBool:
      return "|b1";
    case torch::kUInt8:
      return "|u1";
    case torch::kInt8:
      return "|i1";
    case torch::kInt16:
      return "<i2";
    case torch::kInt32:
      return "<i4";
    case torch::kInt64:
      return "<i8";
    case torch::kFloat16:
      return "<f2";
    case torch::kFloat32:
      return "<f4";
    case torch::kFloat64:
      return "<f8";
    default:
      throw Error(std::string("write_npy: dtype ") + c10::toString(t) +
                  " has no NumPy equivalent (convert it first, e.g. bfloat16 -> float32)");
  }
}

// Minimal parser for the Python dict literal of an .npy header, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  bool has_descr = false, has_order = false, has_shape = false;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  Header parse() {
    Header h;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      const std::string key = parse_string();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          fail("structured dtypes are not supported (descr is not a string)");
        h.descr = parse_string();
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        h.has_order = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        h.has_shape = true;
      } else {
        fail("unexpected header key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail("expected ',' or '}'");
    }
    if (!h.has_descr || !h.has_order || !h.has_shape)
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FileError(name_,
                    "malformed .npy header at character " + std::to_string(pos_) + ": " + what);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    ++pos_;
    const size_t end = s_.find(q, pos_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> parse_shape() {
    expect('(');
    std::vector<int64_t> shape;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        break;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a dimension");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[pos_++] - '0');
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      shape.push_back(v);
      if (shape.size() > 64) fail("too many dimensions");
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      if (peek() == ')') {
        ++pos_;
        break;
      }
      fail("expected ',' or ')' in shape");
    }
    return shape;
  }

  const std::string& s_;
  const std::string& name_;
  size_t pos_ = 0;
};

std::string format_shape(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) s += shape.size() == 1 ? "," : ", ";
  }
  return s + ")";
}

// The parsed preamble of an .npy image: header, dtype, element count, data offset.
struct NpyLayout {
  Header header;
  NpyDtype dtype;
  uint64_t numel = 1;
  size_t offset = 0;  // of the data
  uint64_t data_bytes() const { return numel * dtype.itemsize; }
};

// Parses magic, version, header and dtype from the first `size` bytes (the data need not
// be present). Throws FileError for anything malformed.
NpyLayout parse_npy_layout(const uint8_t* data, size_t size, const std::string& name) {
  if (size < kMagicLen + 2 || std::memcmp(data, kMagic, kMagicLen) != 0)
    throw FileError(name, "not an .npy file (bad magic)");
  const int major = data[6];
  const int minor = data[7];
  size_t header_len = 0;
  size_t prefix = 0;
  if (major == 1) {
    if (size < 10) throw FileError(name, "truncated .npy header");
    header_len = size_t{data[8]} | (size_t{data[9]} << 8);
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw FileError(name, "truncated .npy header");
    header_len = size_t{data[8]} | (size_t{data[9]} << 8) | (size_t{data[10]} << 16) |
                 (size_t{data[11]} << 24);
    prefix = 12;
  } else {
    throw FileError(name, "unsupported .npy format version " + std::to_string(major) + "." +
                              std::to_string(minor));
  }
  if (header_len > size - prefix)
    throw FileError(name, "truncated .npy header: declares " + std::to_string(header_len) +
                              " bytes, " + std::to_string(size - prefix) + " present");
  const std::string header_text(reinterpret_cast<const char*>(data + prefix), header_len);
  NpyLayout l{HeaderParser(header_text, name).parse(), {}, 1, prefix + header_len};
  l.dtype = dtype_from_descr(l.header.descr, name);
  // Element count with overflow checks (also of the byte count).
  const uint64_t max_numel = std::numeric_limits<uint64_t>::max() / l.dtype.itemsize;
  for (int64_t d : l.header.shape) {
    if (d != 0 && l.numel > max_numel / static_cast<uint64_t>(d))
      throw FileError(name, "shape " + format_shape(l.header.shape) + " overflows");
    l.numel *= static_cast<uint64_t>(d);
  }
  return l;
}

torch::Tensor parse_npy_data(const uint8_t* data, size_t size, const std::string& name,
                             const NpyLayout& l) {
  const Header& h = l.header;
  const NpyDtype dt = l.dtype;
  const uint64_t numel = l.numel;
  const size_t offset = l.offset;
  const uint64_t available = size - offset;
  // Trailing bytes after the data are ignored, as np.load does.
  if (numel > available / dt.itemsize)
    throw FileError(name, "truncated .npy data: shape " + format_shape(h.shape) + " of " + h.descr +
                              " needs " + std::to_string(numel * dt.itemsize) + " bytes, " +
                              std::to_string(available) + " present");

  // Fortran order: the bytes hold the reversed shape in C order; permute back and copy.
  std::vector<int64_t> storage_shape = h.shape;
  if (h.fortran_order) std::reverse(storage_shape.begin(), storage_shape.end());
  const torch::ScalarType load_type = dt.type == torch::kBool ? torch::kUInt8 : dt.type;
  torch::Tensor t = torch::empty(storage_shape, torch::TensorOptions().dtype(load_type));
  if (numel > 0) std::memcpy(t.data_ptr(), data + offset, numel * dt.itemsize);
  if (dt.type == torch::kBool) t = t.ne(0);  // any nonzero byte is True, as in numpy
  if (h.fortran_order && t.dim() > 1) {
    std::vector<int64_t> perm(static_cast<size_t>(t.dim()));
    for (int64_t i = 0; i < t.dim(); ++i) perm[static_cast<size_t>(i)] = t.dim() - 1 - i;
    t = t.permute(perm).contiguous();
  }
  return t;
}

// Reads member `idx` of an .npz, checking its .npy header before inflating it: the
// member's recorded size must be what the header's shape and dtype need (np.save writes
// exactly that), and the shape must satisfy `expect`. A zip bomb is refused here.
torch::Tensor read_npz_member(const detail::ZipReader& zip, int64_t idx, const std::string& name,
                              const NpyExpect& expect) {
  const uint64_t member_size = zip.size(idx);
  // Version 1 headers are < 64 KiB; versions 2/3 may be longer (numpy writes them only
  // for huge structured dtypes, which we do not support anyway).
  const std::vector<uint8_t> head = zip.read_prefix(idx, uint64_t{1} << 16);
  const NpyLayout l = parse_npy_layout(head.data(), head.size(), name);
  const auto& shape = l.header.shape;
  const size_t nt = expect.trailing_shape.size();
  bool shape_ok = shape.size() >= nt;
  for (size_t k = 0; shape_ok && k < nt; ++k)
    shape_ok =
        expect.trailing_shape[k] < 0 || shape[shape.size() - nt + k] == expect.trailing_shape[k];
  if (!shape_ok)
    throw FileError(name, "array shape " + format_shape(shape) + " does not end in the expected " +
                              format_shape(expect.trailing_shape) + " (checked before inflating)");
  if (l.data_bytes() > expect.max_bytes)
    throw FileError(name, "array shape " + format_shape(shape) + " of " + l.header.descr +
                              " needs " + std::to_string(l.data_bytes()) +
                              " bytes, more than the limit of " + std::to_string(expect.max_bytes));
  if (member_size != l.offset + l.data_bytes())
    throw FileError(name, "zip member of " + std::to_string(member_size) +
                              " bytes does not match its .npy header (" + std::to_string(l.offset) +
                              " header bytes + shape " + format_shape(shape) + " of " +
                              l.header.descr + " = " + std::to_string(l.offset + l.data_bytes()) +
                              " bytes); refusing to inflate it");
  if (l.dtype.itemsize == 1 && !l.header.fortran_order) {
    // One-byte dtypes in C order (the grouped masks' bool stacks, 1.4 GB for 170 masks at
    // 4K): inflated straight into the tensor's storage, bool bytes made 0/1 in place.
    torch::Tensor buf = torch::empty({static_cast<int64_t>(member_size)}, torch::kUInt8);
    zip.read_into(idx, buf.data_ptr(), member_size);
    torch::Tensor t = buf.slice(0, static_cast<int64_t>(l.offset)).view(shape);
    if (l.dtype.type == torch::kBool) return t.clamp_max_(1).view(torch::kBool);
    return t.view(l.dtype.type);
  }
  const std::vector<uint8_t> data = zip.read(idx);
  return parse_npy_data(data.data(), data.size(), name, l);
}

}  // namespace

torch::Tensor parse_npy(const uint8_t* data, size_t size, const std::string& name) {
  return parse_npy_data(data, size, name, parse_npy_layout(data, size, name));
}

torch::Tensor read_npy(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_regular_file(path, ".npy");
  return parse_npy(bytes.data(), bytes.size(), path);
}

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  return parse_npz(detail::read_regular_file(path, ".npz"), path);
}

std::map<std::string, torch::Tensor> parse_npz(std::vector<uint8_t> bytes,
                                               const std::string& path) {
  detail::ZipReader zip(std::move(bytes), path);
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < zip.names().size(); ++i) {
    const std::string& member = zip.names()[i];
    if (member.size() < 4 || member.compare(member.size() - 4, 4, ".npy") != 0) continue;
    out[member.substr(0, member.size() - 4)] =
        read_npz_member(zip, static_cast<int64_t>(i), path + ":" + member, NpyExpect{});
  }
  return out;
}

torch::Tensor read_npz_array(const std::string& path, const std::string& key) {
  return read_npz_array(path, key, NpyExpect{});
}

torch::Tensor read_npz_array(const std::string& path, const std::string& key,
                             const NpyExpect& expect) {
  detail::ZipReader zip(detail::read_regular_file(path, ".npz"), path);
  const int64_t idx = zip.find(key + ".npy");
  if (idx < 0) {
    std::string present;
    for (const auto& member : zip.names()) {
      if (member.size() < 4 || member.compare(member.size() - 4, 4, ".npy") != 0) continue;
      present += (present.empty() ? "" : ", ") + member.substr(0, member.size() - 4);
    }
    throw FileError(path, "no array '" + key + "' in .npz (present: " +
                              (present.empty() ? std::string("none") : present) + ")");
  }
  return read_npz_member(zip, idx, path + ":" + key + ".npy", expect);
}

std::vector<uint8_t> npy_bytes(const torch::Tensor& tensor) {
  const std::string descr = descr_from_dtype(tensor.scalar_type());
  const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + format_shape(t.sizes().vec()) +
                       ", }";
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<uint8_t> out;
  const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  const bool v2 = header.size() > 65535;
  if (v2) {  // re-pad for the 4-byte length field of version 2.0
    header.pop_back();
    while (!header.empty() && header.back() == ' ') header.pop_back();
    const size_t u2 = kMagicLen + 2 + 4 + header.size() + 1;
    header.append((64 - u2 % 64) % 64, ' ');
    header.push_back('\n');
  }
  out.reserve(kMagicLen + 4 + 4 + header.size() + nbytes);
  out.insert(out.end(), kMagic, kMagic + kMagicLen);
  out.push_back(v2 ? 2 : 1);
  out.push_back(0);
  const size_t hl = header.size();
  out.push_back(static_cast<uint8_t>(hl & 0xff));
  out.push_back(static_cast<uint8_t>((hl >> 8) & 0xff));
  if (v2) {
    out.push_back(static_cast<uint8_t>((hl >> 16) & 0xff));
    out.push_back(static_cast<uint8_t>((hl >> 24) & 0xff));
  }
  out.insert(out.end(), header.begin(), header.end());
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  if (nbytes > 0) out.insert(out.end(), p, p + nbytes);
  return out;
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  const std::vector<uint8_t> bytes = npy_bytes(tensor);
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_npz(const std::string& path,
               const std::vector<std::pair<std::string, torch::Tensor>>& arrays, bool compressed) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> entries;
  entries.reserve(arrays.size());
  for (const auto& [key, tensor] : arrays) {
    if (key.empty()) throw FileError(path, "write_npz: empty array name");
    entries.emplace_back(key + ".npy", npy_bytes(tensor));
  }
  const std::vector<uint8_t> bytes = detail::build_zip(entries, compressed, path);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace samdeblur::io
