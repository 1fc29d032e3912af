#include "pickle.h"

#include <torch/torch.h>

#include <cstring>
#include <limits>

#include "samdeblur/core/error.h"

namespace samdeblur::io::detail {
namespace {

using Kind = PyObject::Kind;

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

const std::vector<std::pair<std::string, torch::ScalarType>>& storage_table() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> table = {
      {"FloatStorage", torch::kFloat32},     {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"DoubleStorage", torch::kFloat64},
      {"LongStorage", torch::kInt64},        {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},       {"CharStorage", torch::kInt8},
      {"ByteStorage", torch::kUInt8},        {"BoolStorage", torch::kBool},
  };
  return table;
}

// Globals the unpickler may name. Anything else is refused at the GLOBAL opcode.
bool allowed_global(const std::string& name) {
  static const char* const allowed[] = {
      "collections.OrderedDict",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "torch.device",
      "builtins.set",
      "__builtin__.set",
  };
  for (const char* a : allowed)
    if (name == a) return true;
  torch::ScalarType dt;
  return storage_dtype(name, &dt);
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& name, const PersistentLoad& load,
            const UnpickleLimits& limits)
      : p_(data), size_(size), name_(name), load_(load), limits_(limits) {}

  PickleResult run() {
    while (true) {
      if (pos_ >= size_) fail("truncated pickle: no STOP opcode");
      const size_t op_pos = pos_;
      const uint8_t op = p_[pos_++];
      if (step(op, op_pos)) break;
    }
    if (stack_.size() != 1)
      fail("pickle stack holds " + std::to_string(stack_.size()) + " values at STOP");
    result_.root = stack_.back();
    return std::move(result_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FileError(name_, what + " (pickle offset " + std::to_string(pos_) + ")");
  }

  PyObject* make(Kind kind) {
    if (result_.arena.size() >= limits_.max_objects)
      fail("pickle creates more than " + std::to_string(limits_.max_objects) + " objects");
    result_.arena.push_back(std::make_unique<PyObject>());
    result_.arena.back()->kind = kind;
    return result_.arena.back().get();
  }
  void push(PyObject* o) {
    if (stack_.size() >= limits_.max_stack) fail("pickle stack overflow");
    stack_.push_back(o);
  }
  PyObject* pop() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    PyObject* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  PyObject* top() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops everything above the latest MARK and the mark itself.
  std::vector<PyObject*> pop_mark() {
    if (marks_.empty()) fail("pickle MARK expected");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyObject*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail("truncated pickle: needs " + std::to_string(n) + " more bytes");
    const uint8_t* q = p_ + pos_;
    pos_ += n;
    return q;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* q = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t{q[k]} << (8 * k);
    return v;
  }
  std::string read_line() {
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (!nl) fail("truncated pickle: unterminated GLOBAL name");
    const size_t end = static_cast<size_t>(static_cast<const uint8_t*>(nl) - p_);
    if (end - pos_ > 256) fail("GLOBAL name too long");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), end - pos_);
    pos_ = end + 1;
    return s;
  }

  PyObject* make_int(int64_t v) {
    PyObject* o = make(Kind::Int);
    o->i = v;
    return o;
  }
  PyObject* make_str(Kind kind, size_t len) {
    PyObject* o = make(kind);
    const uint8_t* q = take(len);
    o->s.assign(reinterpret_cast<const char*>(q), len);
    return o;
  }
  void push_long(size_t nbytes) {
    if (nbytes > 8) fail("integer of " + std::to_string(nbytes) + " bytes is too large");
    uint64_t v = read_le(nbytes);
    if (nbytes > 0 && nbytes < 8 && (v >> (8 * nbytes - 1)) & 1) v |= ~uint64_t{0} << (8 * nbytes);
    push(make_int(static_cast<int64_t>(v)));
  }

  void memo_put(uint64_t idx) {
    if (idx >= limits_.max_memo) fail("memo index " + std::to_string(idx) + " out of range");
    if (memo_.size() <= idx) memo_.resize(static_cast<size_t>(idx) + 1, nullptr);
    memo_[static_cast<size_t>(idx)] = top();
  }
  void memo_get(uint64_t idx) {
    if (idx >= memo_.size() || !memo_[static_cast<size_t>(idx)])
      fail("memo index " + std::to_string(idx) + " was never stored");
    push(memo_[static_cast<size_t>(idx)]);
  }

  void dict_set(PyObject* d, PyObject* k, PyObject* v) {
    if (d->kind != Kind::Dict) fail(std::string("SETITEM on a ") + kind_name(d->kind));
    if (k->kind == Kind::Str) {
      auto it = d->str_keys.find(k->s);
      if (it != d->str_keys.end()) {
        d->entries[it->second].second = v;
        return;
      }
      d->str_keys.emplace(k->s, d->entries.size());
    }
    d->entries.emplace_back(k, v);
  }
  void list_extend(PyObject* l, const std::vector<PyObject*>& items) {
    if (l->kind != Kind::List) fail(std::string("APPEND on a ") + kind_name(l->kind));
    l->items.insert(l->items.end(), items.begin(), items.end());
  }
  PyObject* make_tuple(std::vector<PyObject*> items) {
    PyObject* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }

  PyObject* make_global(const std::string& module, const std::string& attr) {
    const std::string full = module + "." + attr;
    if (!allowed_global(full)) throw Error("refusing to load global '" + full + "' from " + name_);
    PyObject* g = make(Kind::Global);
    g->s = full;
    return g;
  }

  std::vector<int64_t> int_tuple(PyObject* o, const char* what) {
    if (o->kind != Kind::Tuple && o->kind != Kind::List)
      fail(std::string(what) + " is a " + kind_name(o->kind) + ", expected a tuple");
    std::vector<int64_t> out;
    for (PyObject* x : o->items) {
      if (x->kind != Kind::Int) fail(std::string(what) + " holds a non-integer");
      out.push_back(x->i);
    }
    return out;
  }

  // torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  //                                 backward_hooks[, metadata])
  PyObject* rebuild_tensor(const std::vector<PyObject*>& args) {
    if (args.size() < 4) fail("_rebuild_tensor_v2 expects at least 4 arguments");
    PyObject* storage = args[0];
    if (storage->kind != Kind::Storage) fail("_rebuild_tensor_v2: first argument is not a storage");
    if (args[1]->kind != Kind::Int) fail("_rebuild_tensor_v2: storage offset is not an integer");
    const int64_t offset = args[1]->i;
    const std::vector<int64_t> sizes = int_tuple(args[2], "tensor size");
    const std::vector<int64_t> strides = int_tuple(args[3], "tensor stride");
    if (sizes.size() != strides.size()) fail("tensor size and stride differ in length");
    if (sizes.size() > 64) fail("tensor has more than 64 dimensions");
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(storage->dtype));
    const int64_t nbytes = storage->tensor.numel();
    const int64_t storage_numel = nbytes / itemsize;
    if (offset < 0) fail("negative storage offset");
    // Extent check: offset + sum((size-1)*stride) must lie inside the storage, with
    // overflow-safe arithmetic (sizes and strides come from the file).
    bool empty = false;
    for (int64_t s : sizes) {
      if (s < 0) fail("negative tensor size");
      if (s == 0) empty = true;
    }
    if (!empty) {
      __int128 last = offset;
      for (size_t d = 0; d < sizes.size(); ++d) {
        if (strides[d] < 0) fail("negative tensor stride");
        last += static_cast<__int128>(sizes[d] - 1) * strides[d];
        if (last >= storage_numel)
          fail("tensor of size " + c10::str(c10::IntArrayRef(sizes)) + ", stride " +
               c10::str(c10::IntArrayRef(strides)) + ", offset " + std::to_string(offset) +
               " exceeds its storage of " + std::to_string(storage_numel) + " elements");
      }
    }
    __int128 count = 1;  // even empty tensors must have a representable element count
    for (int64_t s : sizes) {
      count *= s == 0 ? 1 : s;
      if (count > (__int128{1} << 62))
        fail("tensor size " + c10::str(c10::IntArrayRef(sizes)) + " is too large");
    }
    torch::Tensor bytes = storage->tensor.narrow(0, 0, storage_numel * itemsize);
    torch::Tensor t;
    if (storage->dtype == torch::kBool) {
      t = bytes.as_strided(sizes, strides, offset).ne(0);  // never trust bytes to be 0/1
    } else {
      t = bytes.view(storage->dtype).as_strided(sizes, strides, offset);
      // The first tensor covering a whole storage contiguously takes it over without a copy
      // (the common case: one storage per parameter); any other use gets its own copy so
      // results never alias.
      if (!storage->b && offset == 0 && t.is_contiguous() && t.numel() == storage_numel) {
        storage->b = true;
      } else {
        t = t.clone(at::MemoryFormat::Contiguous);
      }
    }
    PyObject* o = make(Kind::Tensor);
    o->tensor = t;
    return o;
  }

  PyObject* apply(PyObject* callable, PyObject* args_obj) {
    if (callable->kind != Kind::Global)
      fail(std::string("REDUCE on a ") + kind_name(callable->kind));
    if (args_obj->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const std::vector<PyObject*>& args = args_obj->items;
    const std::string& fn = callable->s;
    if (fn == "collections.OrderedDict") {
      if (!args.empty()) fail("OrderedDict with constructor arguments is not supported");
      return make(Kind::Dict);
    }
    if (fn == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    if (fn == "torch._utils._rebuild_parameter" ||
        fn == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || args[0]->kind != Kind::Tensor)
        fail(fn + ": first argument is not a tensor");
      return args[0];
    }
    if (fn == "torch.device") {
      if (args.empty() || args[0]->kind != Kind::Str) fail("torch.device expects a string");
      PyObject* o = make(Kind::Str);
      o->s = args[0]->s;
      return o;
    }
    if (fn == "builtins.set" || fn == "__builtin__.set") {
      PyObject* o = make(Kind::List);
      if (!args.empty()) {
        if (args[0]->kind != Kind::List && args[0]->kind != Kind::Tuple)
          fail("set() of a non-list");
        o->items = args[0]->items;
      }
      return o;
    }
    fail("global '" + fn + "' cannot be called");
  }

  // Returns true at STOP.
  bool step(uint8_t op, size_t op_pos) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t proto = *take(1);
        if (proto > 5) fail("unsupported pickle protocol " + std::to_string(proto));
        return false;
      }
      case 0x95:
        take(8);
        return false;  // FRAME: framing is transparent here
      case '.':
        return true;  // STOP
      case '(':       // MARK
        if (marks_.size() >= limits_.max_stack) fail("too many MARKs");
        marks_.push_back(stack_.size());
        return false;
      case '0':
        pop();
        return false;  // POP
      case '1':
        pop_mark();
        return false;  // POP_MARK
      case '2':
        push(top());
        return false;  // DUP
      case 'N':
        push(make(Kind::None));
        return false;
      case 0x88:
      case 0x89: {
        PyObject* o = make(Kind::Bool);
        o->b = op == 0x88;
        push(o);
        return false;
      }
      case 'J':
        push(make_int(static_cast<int32_t>(read_le(4))));
        return false;  // BININT
      case 'K':
        push(make_int(static_cast<int64_t>(read_le(1))));
        return false;  // BININT1
      case 'M':
        push(make_int(static_cast<int64_t>(read_le(2))));
        return false;  // BININT2
      case 0x8a:
        push_long(static_cast<size_t>(read_le(1)));
        return false;  // LONG1
      case 0x8b:
        push_long(static_cast<size_t>(read_le(4)));
        return false;  // LONG4
      case 'G': {      // BINFLOAT, big-endian IEEE double
        const uint8_t* q = take(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | q[k];
        PyObject* o = make(Kind::Float);
        std::memcpy(&o->f, &bits, 8);
        push(o);
        return false;
      }
      case 'X':
        push(make_str(Kind::Str, static_cast<size_t>(read_le(4))));
        return false;
      case 0x8c:
        push(make_str(Kind::Str, static_cast<size_t>(read_le(1))));
        return false;
      case 0x8d: {
        const uint64_t n = read_le(8);
        if (n > size_) fail("string longer than the pickle");
        push(make_str(Kind::Str, static_cast<size_t>(n)));
        return false;
      }
      case 'T': {  // BINSTRING, signed 4-byte length
        const int32_t n = static_cast<int32_t>(read_le(4));
        if (n < 0) fail("negative BINSTRING length");
        push(make_str(Kind::Str, static_cast<size_t>(n)));
        return false;
      }
      case 'U':
        push(make_str(Kind::Str, static_cast<size_t>(read_le(1))));
        return false;
      case 'B':
        push(make_str(Kind::Bytes, static_cast<size_t>(read_le(4))));
        return false;
      case 'C':
        push(make_str(Kind::Bytes, static_cast<size_t>(read_le(1))));
        return false;
      case ')':
        push(make_tuple({}));
        return false;
      case 't':
        push(make_tuple(pop_mark()));
        return false;
      case 0x85:
      case 0x86:
      case 0x87: {
        const size_t n = static_cast<size_t>(op - 0x84);
        std::vector<PyObject*> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(make_tuple(std::move(items)));
        return false;
      }
      case ']':
        push(make(Kind::List));
        return false;
      case 'l': {
        PyObject* l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        return false;
      }
      case 'a': {
        PyObject* v = pop();
        list_extend(top(), {v});
        return false;
      }
      case 'e': {
        std::vector<PyObject*> items = pop_mark();
        list_extend(top(), items);
        return false;
      }
      case '}':
        push(make(Kind::Dict));
        return false;
      case 'd': {
        std::vector<PyObject*> items = pop_mark();
        if (items.size() % 2) fail("DICT with an odd number of items");
        PyObject* d = make(Kind::Dict);
        for (size_t k = 0; k < items.size(); k += 2) dict_set(d, items[k], items[k + 1]);
        push(d);
        return false;
      }
      case 's': {
        PyObject* v = pop();
        PyObject* k = pop();
        dict_set(top(), k, v);
        return false;
      }
      case 'u': {
        std::vector<PyObject*> items = pop_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        PyObject* d = top();
        for (size_t k = 0; k < items.size(); k += 2) dict_set(d, items[k], items[k + 1]);
        return false;
      }
      case 'q':
        memo_put(read_le(1));
        return false;
      case 'r':
        memo_put(read_le(4));
        return false;
      case 0x94:
        memo_put(memo_.size());
        return false;  // MEMOIZE
      case 'h':
        memo_get(read_le(1));
        return false;
      case 'j':
        memo_get(read_le(4));
        return false;
      case 'c': {  // GLOBAL "module\nname\n"
        const std::string module = read_line();
        const std::string attr = read_line();
        push(make_global(module, attr));
        return false;
      }
      case 0x93: {  // STACK_GLOBAL
        PyObject* attr = pop();
        PyObject* module = pop();
        if (attr->kind != Kind::Str || module->kind != Kind::Str)
          fail("STACK_GLOBAL of non-strings");
        push(make_global(module->s, attr->s));
        return false;
      }
      case 'R': {  // REDUCE
        PyObject* args = pop();
        PyObject* callable = pop();
        push(apply(callable, args));
        return false;
      }
      case 'b': {  // BUILD: only state on dicts (e.g. OrderedDict._metadata) is accepted, and
                   // ignored
        PyObject* state = pop();
        PyObject* obj = top();
        (void)state;
        if (obj->kind != Kind::Dict && obj->kind != Kind::Tensor)
          fail(std::string("BUILD on a ") + kind_name(obj->kind));
        return false;
      }
      case 'Q': {  // BINPERSID
        PyObject* pid = pop();
        if (!load_) fail("persistent id without a loader");
        push(load_(pid, [this] { return make(Kind::Storage); }));
        return false;
      }
      default:
        pos_ = op_pos;
        fail("unsupported pickle opcode " + hex_byte(op));
    }
  }

  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
  const PersistentLoad& load_;
  UnpickleLimits limits_;
  std::vector<PyObject*> stack_;
  std::vector<size_t> marks_;
  std::vector<PyObject*> memo_;
  PickleResult result_;
};

}  // namespace

PyObject* PyObject::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = str_keys.find(key);
  return it == str_keys.end() ? nullptr : entries[it->second].second;
}

const char* kind_name(PyObject::Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::Str:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Storage:
      return "storage";
    case Kind::Tensor:
      return "tensor";
  }
  return "?";
}

PickleResult unpickle(const uint8_t* data, size_t size, const std::string& name,
                      const PersistentLoad& persistent_load, const UnpickleLimits& limits) {
  return Unpickler(data, size, name, persistent_load, limits).run();
}

bool storage_dtype(const std::string& global_name, torch::ScalarType* dtype) {
  const std::string prefix = "torch.";
  if (global_name.compare(0, prefix.size(), prefix) != 0) return false;
  const std::string cls = global_name.substr(prefix.size());
  for (const auto& [n, t] : storage_table()) {
    if (n == cls) {
      *dtype = t;
      return true;
    }
  }
  return false;
}

std::string storage_class(torch::ScalarType dtype) {
  for (const auto& [n, t] : storage_table())
    if (t == dtype) return n;
  throw Error(std::string("no torch storage class for dtype ") + c10::toString(dtype));
}

}  // namespace samdeblur::io::detail
