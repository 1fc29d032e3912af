#include "samdeblur/io/checkpoint.h"

#include <torch/torch.h>

#include <map>
#include <set>
#include <unordered_map>

#include "pickle.h"
#include "regular_file.h"
#include "safetensors.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "zip_util.h"

namespace samdeblur::io {
namespace {

using detail::PyObject;
using Kind = PyObject::Kind;

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::vector<std::string> dict_keys(const PyObject* d) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : d->entries)
    keys.push_back(k->kind == Kind::Str ? "'" + k->s + "'"
                                        : std::string("<") + detail::kind_name(k->kind) + ">");
  return keys;
}

bool all_tensors(const PyObject* d) {
  for (const auto& [k, v] : d->entries)
    if (k->kind != Kind::Str || v->kind != Kind::Tensor) return false;
  return true;
}

StateDict to_state_dict(const PyObject* d) {
  StateDict sd;
  sd.reserve(d->entries.size());
  for (const auto& [k, v] : d->entries) sd.emplace_back(k->s, v->tensor);
  return sd;
}

// Picks the tensor dict out of an unpickled checkpoint (see load_state_dict_file).
StateDict select_state_dict(const PyObject* root, const std::string& name,
                            const std::string& param_key) {
  if (root->kind != Kind::Dict)
    throw FileError(name, std::string("checkpoint holds a ") + detail::kind_name(root->kind) +
                              ", expected a dict of tensors");
  if (all_tensors(root)) return to_state_dict(root);
  const PyObject* chosen = root->get(param_key);
  std::string used = param_key;
  if (!chosen && root->get("params")) {
    log::warn(name + ": no '" + param_key + "' in checkpoint, using 'params' (as BasicSR does)");
    chosen = root->get("params");
    used = "params";
  }
  if (!chosen)
    throw FileError(
        name, "checkpoint has no '" + param_key +
                  "' entry and is not a dict of tensors; top-level keys: " + join(dict_keys(root)));
  if (chosen->kind != Kind::Dict)
    throw FileError(name, "checkpoint entry '" + used + "' is a " +
                              detail::kind_name(chosen->kind) + ", expected a dict of tensors");
  for (const auto& [k, v] : chosen->entries) {
    if (k->kind != Kind::Str)
      throw FileError(name, "checkpoint entry '" + used + "' has a non-string key");
    if (v->kind != Kind::Tensor)
      throw FileError(
          name, "checkpoint entry '" + used + "." + k->s + "' is a " + detail::kind_name(v->kind) +
                    ", expected a tensor (nested dicts are not state dicts); keys of '" + used +
                    "': " + join(dict_keys(chosen)));
  }
  return to_state_dict(chosen);
}

StateDict read_pth(std::vector<uint8_t> file, const std::string& name,
                   const std::string& param_key) {
  detail::ZipReader zip(std::move(file), name);
  // The top folder is the file's stem as torch.save saw it ("archive" since torch 2.x); find
  // */data.pkl.
  std::string prefix;
  int64_t pkl_index = -1;
  for (size_t i = 0; i < zip.names().size(); ++i) {
    const std::string& n = zip.names()[i];
    const size_t slash = n.find('/');
    if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = n.substr(0, slash + 1);
      pkl_index = static_cast<int64_t>(i);
      break;
    }
  }
  if (pkl_index < 0)
    throw FileError(name, "zip archive has no '<folder>/data.pkl' (not a torch.save file)");
  const int64_t order = zip.find(prefix + "byteorder");
  if (order >= 0) {
    const auto bo = zip.read(order, 64);
    if (std::string(bo.begin(), bo.end()) != "little")
      throw FileError(name, "big-endian torch.save checkpoints are not supported");
  }
  const std::vector<uint8_t> pkl = zip.read(pkl_index, uint64_t{1} << 31);

  std::unordered_map<std::string, PyObject*> storages;  // key -> Storage, shared by views
  auto persistent_load = [&](PyObject* pid, const std::function<PyObject*()>& make) -> PyObject* {
    if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      throw FileError(name,
                      "unsupported persistent id in data.pkl (expected ('storage', type, key, "
                      "location, numel))");
    const PyObject* type = pid->items[1];
    const PyObject* key = pid->items[2];
    const PyObject* numel = pid->items[4];
    torch::ScalarType dtype;
    if (type->kind != Kind::Global || !detail::storage_dtype(type->s, &dtype))
      throw FileError(name, "persistent id names an unsupported storage type");
    if (key->kind != Kind::Str || numel->kind != Kind::Int || numel->i < 0)
      throw FileError(name, "malformed storage persistent id");
    auto it = storages.find(key->s);
    if (it != storages.end()) {
      if (it->second->dtype != dtype)
        throw FileError(name, "storage '" + key->s + "' used with two dtypes");
      return it->second;
    }
    const std::string record = prefix + "data/" + key->s;
    const int64_t idx = zip.find(record);
    if (idx < 0) throw FileError(name, "missing storage record '" + record + "'");
    const uint64_t nbytes = zip.size(idx);
    const uint64_t itemsize = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel->i) > nbytes / itemsize)
      throw FileError(name, "storage record '" + record + "' holds " + std::to_string(nbytes) +
                                " bytes, fewer than " + std::to_string(numel->i) + " elements of " +
                                c10::toString(dtype));
    PyObject* s = make();
    s->dtype = dtype;
    s->tensor = torch::empty({static_cast<int64_t>(nbytes)}, torch::kUInt8);
    zip.read_into(idx, s->tensor.data_ptr(), nbytes);
    s->tensor = s->tensor.narrow(0, 0, static_cast<int64_t>(numel->i * itemsize));
    storages.emplace(key->s, s);
    return s;
  };
  const detail::PickleResult result =
      detail::unpickle(pkl.data(), pkl.size(), name, persistent_load);
  return select_state_dict(result.root, name, param_key);
}

std::string shape_str(const torch::Tensor& t) { return c10::str(t.sizes()); }

// ---- .pth writer: pickle protocol 2 as Python's pickle emits it for torch.save ----
class PickleWriter {
 public:
  void proto() { out_ += "\x80\x02"; }
  void op(char c) { out_.push_back(c); }
  void global(const std::string& module, const std::string& name) {
    out_ += "c" + module + "\n" + name + "\n";
  }
  void str(const std::string& s) {
    out_.push_back('X');
    le(s.size(), 4);
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_.push_back('K');
      le(static_cast<uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      out_.push_back('M');
      le(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_.push_back('J');
      le(static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
    } else {
      out_ += "\x8a\x08";  // LONG1, 8 bytes two's complement
      le(static_cast<uint64_t>(v), 8);
    }
  }
  void int_tuple(c10::IntArrayRef v) {
    if (v.empty()) return op(')');
    op('(');
    for (int64_t x : v) integer(x);
    op('t');
  }
  const std::string& bytes() const { return out_; }

 private:
  void le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  }
  std::string out_;
};

}  // namespace

std::vector<NonFinite> count_nonfinite(const StateDict& sd) {
  std::vector<NonFinite> out;
  torch::NoGradGuard no_grad;
  for (const auto& [key, t] : sd) {
    if (!t.defined() || !t.is_floating_point() || t.numel() == 0) continue;
    const int64_t n = t.isfinite().logical_not().sum().item<int64_t>();
    if (n > 0) out.push_back({key, n, t.numel()});
  }
  return out;
}

namespace {

StateDict parse_checkpoint(std::vector<uint8_t>&& bytes, const std::string& name,
                           const std::string& param_key) {
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  if (detail::looks_like_zip(data, size)) return read_pth(std::move(bytes), name, param_key);
  if (detail::looks_like_safetensors(data, size))
    return detail::parse_safetensors(data, size, name);
  if (size >= 2 && data[0] == 0x80)
    throw FileError(
        name, "legacy (non-zip) torch.save format is not supported; re-save it with torch >= 1.6");
  throw FileError(name, "not a .pth (zip) or .safetensors checkpoint");
}

// Refuses (or, when allowed, warns about) tensors holding NaN or Inf.
void check_finite(const StateDict& sd, const std::string& name, bool allow) {
  const std::vector<NonFinite> bad = count_nonfinite(sd);
  if (bad.empty()) return;
  std::string msg = std::to_string(bad.size()) + " tensor" +
                    (bad.size() > 1 ? "s hold" : " holds") + " non-finite values (NaN or Inf):";
  for (const auto& b : bad)
    msg += "\n    " + b.name + ": " + std::to_string(b.count) + " of " + std::to_string(b.numel);
  if (!allow)
    throw FileError(
        name, msg +
                  "\n  refusing to load it (allow_nonfinite, --allow-nonfinite of sdb-eval and "
                  "sdb-train, loads it anyway)");
  log::warn(name + ": " + msg + "\n  loaded anyway (allow_nonfinite)");
}

}  // namespace

StateDict load_state_dict_bytes(const uint8_t* data, size_t size, const std::string& name,
                                const ReadOptions& options) {
  StateDict sd = parse_checkpoint(std::vector<uint8_t>(data, data + size), name, options.param_key);
  check_finite(sd, name, options.allow_nonfinite);
  return sd;
}

StateDict load_state_dict_bytes(const uint8_t* data, size_t size, const std::string& name,
                                const std::string& param_key) {
  return load_state_dict_bytes(data, size, name, ReadOptions{param_key, false});
}

StateDict load_state_dict_file(const std::string& path, const ReadOptions& options) {
  StateDict sd =
      parse_checkpoint(detail::read_regular_file(path, "checkpoint"), path, options.param_key);
  check_finite(sd, path, options.allow_nonfinite);
  return sd;
}

StateDict load_state_dict_file(const std::string& path, const std::string& param_key) {
  return load_state_dict_file(path, ReadOptions{param_key, false});
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& sd, bool strict,
                           const std::string& source_name) {
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& p : module.named_parameters(true)) {
    targets.emplace_back(p.key(), p.value());
    by_name[p.key()] = p.value();
  }
  for (const auto& b : module.named_buffers(true)) {
    if (by_name.count(b.key())) continue;
    targets.emplace_back(b.key(), b.value());
    by_name[b.key()] = b.value();
  }
  LoadReport report;
  std::map<std::string, torch::Tensor> source;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (dst, src)
  for (const auto& [raw_key, tensor] : sd) {
    const std::string key = raw_key.rfind("module.", 0) == 0 ? raw_key.substr(7) : raw_key;
    if (!source.emplace(key, tensor).second) {
      report.unexpected.push_back(raw_key + " (duplicate of '" + key + "')");
      continue;
    }
    auto it = by_name.find(key);
    if (it == by_name.end()) {
      report.unexpected.push_back(key + " " + shape_str(tensor));
    } else if (it->second.sizes() != tensor.sizes()) {
      report.shape_mismatch.push_back(key + ": checkpoint " + shape_str(tensor) + " vs model " +
                                      shape_str(it->second));
    } else {
      copies.emplace_back(it->second, tensor);
    }
  }
  for (const auto& [key, t] : targets)
    if (!source.count(key)) report.missing.push_back(key + " " + shape_str(t));

  auto describe = [&] {
    std::string msg;
    auto section = [&](const char* title, const std::vector<std::string>& items) {
      if (items.empty()) return;
      msg += std::string("\n  ") + title + " (" + std::to_string(items.size()) + "):";
      for (const auto& item : items) msg += "\n    " + item;
    };
    section("missing", report.missing);
    section("unexpected", report.unexpected);
    section("shape mismatch", report.shape_mismatch);
    return msg;
  };
  if (strict && !report.ok())
    throw Error("cannot load state dict from " + source_name + " strictly:" + describe());
  {
    torch::NoGradGuard no_grad;
    for (auto& [dst, src] : copies) dst.copy_(src.to(dst.device()));  // copy_ converts the dtype
  }
  if (!report.ok())
    log::warn("loaded " + std::to_string(copies.size()) + " tensors from " + source_name +
              " non-strictly:" + describe());
  return report;
}

void save_state_dict_file(const std::string& path, const StateDict& sd,
                          const std::string& param_key) {
  // Layout of torch.save (torch/serialization.py _save): archive/data.pkl, archive/data/<key>,
  // archive/version. Each tensor gets its own storage (views are not preserved).
  PickleWriter w;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> entries;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> storages;
  w.proto();
  w.op('}');  // {param_key: OrderedDict([...])}
  w.str(param_key);
  w.global("collections", "OrderedDict");
  w.op(')');
  w.op('R');
  w.op('(');
  std::set<std::string> seen;
  for (size_t i = 0; i < sd.size(); ++i) {
    const auto& [key, tensor] = sd[i];
    if (!seen.insert(key).second) throw FileError(path, "duplicate tensor name '" + key + "'");
    const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const std::string storage_key = std::to_string(i);
    w.str(key);
    w.global("torch._utils", "_rebuild_tensor_v2");
    w.op('(');
    // persistent id: ('storage', torch.<Type>Storage, key, 'cpu', numel)
    w.op('(');
    w.str("storage");
    w.global("torch", detail::storage_class(t.scalar_type()));
    w.str(storage_key);
    w.str("cpu");
    w.integer(t.numel());
    w.op('t');
    w.op('Q');
    w.integer(0);  // storage offset
    w.int_tuple(t.sizes());
    w.int_tuple(t.strides());
    w.op('\x89');  // requires_grad = False
    w.global("collections", "OrderedDict");
    w.op(')');
    w.op('R');  // backward hooks
    w.op('t');
    w.op('R');
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    storages.emplace_back(
        "archive/data/" + storage_key,
        std::vector<uint8_t>(p, p + static_cast<size_t>(t.numel()) * t.element_size()));
  }
  w.op('u');  // SETITEMS into the OrderedDict
  w.op('s');  // SETITEM into the top dict
  w.op('.');
  const std::string& pkl = w.bytes();
  entries.emplace_back("archive/data.pkl", std::vector<uint8_t>(pkl.begin(), pkl.end()));
  for (auto& s : storages) entries.push_back(std::move(s));
  const std::string version = "3\n";
  entries.emplace_back("archive/version", std::vector<uint8_t>(version.begin(), version.end()));
  const std::vector<uint8_t> bytes = detail::build_zip(entries, /*compressed=*/false, path);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace samdeblur::io
