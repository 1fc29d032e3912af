#include "samdeblur/config/yaml_reader.h"

#include <fmt/format.h>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "samdeblur/core/log.h"

namespace samdeblur::config {

namespace {

// Streams the parser's events once, before any node tree exists, and refuses what the
// official (PyYAML) reader would accept dangerously or resolve silently:
//  - a tag outside the core schema (e.g. !!python/object/apply:..., which BasicSR's unsafe
//    loader would execute if our resolved config.yml were fed back to it);
//  - a key repeated in one mapping with a different value (yaml-cpp keeps the first, PyYAML
//    the last value); a repeat with the same scalar value (the official GoPro NAFNet.yml
//    says `use_shuffle: True` and later `use_shuffle: true`) is accepted with a warning,
//    since both readers then agree;
//  - more than kMaxYamlNodes nodes once aliases are expanded (an alias bomb: yaml-cpp shares
//    aliased nodes, but every walk that copies or dumps the tree expands them);
//  - a scalar that is not valid UTF-8 (it would only fail when summary.json is written).
// Errors are ConfigError "<source>:<line>: ...".
class YamlValidator : public YAML::EventHandler {
 public:
  explicit YamlValidator(std::string source) : source_(std::move(source)) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    begin_node(mark, "~", true);
    leaf(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    begin_node(mark, "*" + std::to_string(anchor), true);
    const auto it = anchor_sizes_.find(anchor);
    // An alias of an anchor still open (recursive) or unknown: yaml-cpp reports unknown ones.
    add(mark, it == anchor_sizes_.end() ? 1 : it->second);
    after_node();
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    check_tag(mark, tag);
    check_utf8(mark, value);
    begin_node(mark, value, true);
    leaf(mark, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, false);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, true);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    bool is_map;
    bool expecting_key = true;
    YAML::anchor_t anchor = 0;
    uint64_t start = 0;                                // nodes_ when the collection began
    std::map<std::string, int> key_lines;              // for maps: key -> 1-based line
    std::map<std::string, std::string> scalar_values;  // for maps: key -> its scalar value
    std::string key;                                   // the key whose value comes next
    int repeated_from = 0;                             // > 0: `key` repeats the one at this line
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& what) const {
    throw ConfigError(fmt::format("{}:{}: {}", source_, mark.line + 1, what));
  }

  void add(const YAML::Mark& mark, uint64_t n) {
    nodes_ += n;
    if (nodes_ > kMaxYamlNodes)
      fail(mark, fmt::format("more than {} YAML nodes once aliases are expanded (alias bomb?)",
                             kMaxYamlNodes));
  }

  // A node begins. At a key position of a mapping: remember the key and whether it
  // repeats one. At a value position: a repeated key must bring the same scalar value.
  void begin_node(const YAML::Mark& mark, const std::string& text, bool scalar) {
    if (stack_.empty() || !stack_.back().is_map) return;
    Frame& f = stack_.back();
    if (!f.expecting_key) {
      value_node(f, mark, text, scalar);
      return;
    }
    f.key = scalar ? text : "";
    f.repeated_from = 0;
    if (!scalar) return;  // a complex (mapping / sequence) key
    const auto [it, inserted] = f.key_lines.emplace(text, mark.line + 1);
    if (!inserted) f.repeated_from = it->second;
  }

  void value_node(Frame& f, const YAML::Mark& mark, const std::string& text, bool scalar) {
    if (f.key.empty()) return;
    const std::string value = scalar ? normalised_scalar(text) : "";
    if (!f.repeated_from) {
      if (scalar) f.scalar_values[f.key] = value;
      return;
    }
    const auto first = f.scalar_values.find(f.key);
    if (!scalar || first == f.scalar_values.end() || first->second != value)
      fail(mark, fmt::format("duplicate key '{}' (first at line {}) with a different value", f.key,
                             f.repeated_from));
    log::warn(fmt::format("{}:{}: key '{}' repeats line {} with the same value; accepted", source_,
                          mark.line + 1, f.key, f.repeated_from));
  }

  // YAML 1.1 booleans compare as booleans (True == true); anything else as written.
  static std::string normalised_scalar(const std::string& text) {
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "true" || lower == "false") return lower;
    return text;
  }

  void after_node() {
    if (!stack_.empty() && stack_.back().is_map)
      stack_.back().expecting_key = !stack_.back().expecting_key;
  }

  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor) {
    add(mark, 1);
    if (anchor) anchor_sizes_[anchor] = 1;
    after_node();
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, bool is_map) {
    check_tag(mark, tag);
    begin_node(mark, "", false);
    add(mark, 1);
    Frame f;
    f.is_map = is_map;
    f.anchor = anchor;
    f.start = nodes_ - 1;
    stack_.push_back(std::move(f));
  }

  void close() {
    const Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.anchor) anchor_sizes_[f.anchor] = nodes_ - f.start;
    after_node();
  }

  void check_tag(const YAML::Mark& mark, const std::string& tag) const {
    // "?" untagged, "!" non-specific (quoted scalars); otherwise the core schema only.
    static const std::set<std::string> allowed = {
        "",
        "?",
        "!",
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:map",
        "tag:yaml.org,2002:seq",
    };
    if (allowed.count(tag)) return;
    std::string shown = tag;
    const std::string core = "tag:yaml.org,2002:";
    if (shown.rfind(core, 0) == 0) shown = "!!" + shown.substr(core.size());
    fail(mark, fmt::format("tag '{}' is not allowed (only !!str !!int !!float !!bool !!null "
                           "!!map !!seq)",
                           shown));
  }

  void check_utf8(const YAML::Mark& mark, const std::string& text) const {
    const size_t bad = invalid_utf8_offset(text);
    if (bad != std::string::npos)
      fail(mark, fmt::format("value is not valid UTF-8 (byte 0x{:02x} at offset {})",
                             static_cast<unsigned char>(text[bad]), bad));
  }

  std::string source_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, uint64_t> anchor_sizes_;  // expanded node count per anchor
  uint64_t nodes_ = 0;
};

// Validates the first document of `text` (the one YAML::Load returns).
void validate_yaml(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  YamlValidator validator(source);
  parser.HandleNextDocument(validator);
}

}  // namespace

size_t invalid_utf8_offset(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte, overlong 0xc0/0xc1 lead, or > 0xf4
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return i;  // overlong, out of range, or a UTF-16 surrogate
    i += len;
  }
  return std::string::npos;
}

YAML::Node load_yaml_text(const std::string& text, const std::string& source) {
  try {
    validate_yaml(text, source);
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {  // ParserException, and e.g. an unknown alias
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
}

YAML::Node load_yaml_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::directory)
    throw FileError(path, "is a directory, expected a config file");
  if (!std::filesystem::is_regular_file(status)) throw FileError(path, "config file not found");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, "cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw FileError(path, "cannot read config file");
  YAML::Node root = load_yaml_text(text.str(), path);
  if (!root.IsMap()) throw ConfigError(path + ": top level of a config must be a mapping");
  return root;
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set expects key.path=value, got '" + assignment + "'");
  const std::string key_path = assignment.substr(0, eq);
  const std::string value_text = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto dot = key_path.find('.', start);
    parts.push_back(key_path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& p : parts)
    if (p.empty()) throw ConfigError("--set: empty component in key path '" + key_path + "'");
  YAML::Node value;
  try {
    value = load_yaml_text(value_text, "--set " + key_path);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + key_path + ": cannot parse value '" + value_text +
                      "': " + e.what());
  }
  if (!value.IsDefined() || value.IsNull()) value = YAML::Node(YAML::NodeType::Null);
  // Walk with explicit node copies (yaml-cpp nodes are handles).
  std::vector<YAML::Node> chain{root};
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node cur = chain.back();
    YAML::Node next = cur[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = cur[parts[i]];
    } else if (!next.IsMap()) {
      throw ConfigError("--set " + key_path + ": '" + parts[i] + "' is not a mapping");
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

Section::Section(YAML::Node node, std::string path, std::string source)
    : node_(std::move(node)), path_(std::move(path)), source_(std::move(source)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
    throw ConfigError(fmt::format("{}: '{}' must be a mapping", source_, path_));
}

std::string Section::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

bool Section::has(const std::string& key) const {
  if (!node_.IsMap()) return false;
  const YAML::Node n = node_[key];
  return n.IsDefined() && !n.IsNull();
}

YAML::Node Section::lookup(const std::string& key) {
  used_.insert(key);
  if (!node_.IsMap()) return YAML::Node();
  return node_[key];
}

namespace {

template <typename T>
T convert_node(const YAML::Node& n, const std::string& where, const std::string& source) {
  try {
    // BasicSR configs write floats as "!!float 1e-3"; yaml-cpp parses them as usual.
    return n.as<T>();
  } catch (const YAML::Exception&) {
    std::string shown;
    try {
      shown = YAML::Dump(n);
    } catch (...) {
      shown = "?";
    }
    std::string expected = "a value of the right type";
    if constexpr (std::is_same_v<T, bool>)
      expected = "true/false";
    else if constexpr (std::is_integral_v<T>)
      expected = "an integer";
    else if constexpr (std::is_floating_point_v<T>)
      expected = "a number";
    else if constexpr (std::is_same_v<T, std::string>)
      expected = "a string";
    else
      expected = "a list";
    throw ConfigError(fmt::format("{}: {} must be {}, got '{}'", source, where, expected, shown));
  }
}

// Integers written as floats (BasicSR: "val_freq: !!float 1e4") are accepted
// when they are whole numbers.
template <typename T>
T convert_value(const YAML::Node& n, const std::string& where, const std::string& source) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      const double d = convert_node<double>(n, where, source);
      if (d != static_cast<double>(static_cast<T>(d)))
        throw ConfigError(fmt::format("{}: {} must be an integer, got {}", source, where, d));
      return static_cast<T>(d);
    }
  } else {
    return convert_node<T>(n, where, source);
  }
}

}  // namespace

template <typename T>
T Section::get(const std::string& key, const T& fallback) {
  const YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return fallback;
  return convert_value<T>(n, key_path(key), source_);
}

template <typename T>
T Section::required(const std::string& key) {
  const YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull())
    throw ConfigError(fmt::format("{}: required key '{}' is missing", source_, key_path(key)));
  return convert_value<T>(n, key_path(key), source_);
}

template <typename T>
std::optional<T> Section::optional(const std::string& key) {
  const YAML::Node n = lookup(key);
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  return convert_value<T>(n, key_path(key), source_);
}

#define SAMDEBLUR_SECTION_INSTANTIATE(T)                    \
  template T Section::get<T>(const std::string&, const T&); \
  template T Section::required<T>(const std::string&);      \
  template std::optional<T> Section::optional<T>(const std::string&);
SAMDEBLUR_SECTION_INSTANTIATE(bool)
SAMDEBLUR_SECTION_INSTANTIATE(int)
SAMDEBLUR_SECTION_INSTANTIATE(int64_t)
SAMDEBLUR_SECTION_INSTANTIATE(double)
SAMDEBLUR_SECTION_INSTANTIATE(std::string)
SAMDEBLUR_SECTION_INSTANTIATE(std::vector<int64_t>)
SAMDEBLUR_SECTION_INSTANTIATE(std::vector<double>)
#undef SAMDEBLUR_SECTION_INSTANTIATE

Section Section::child(const std::string& key) {
  YAML::Node n = lookup(key);
  return Section(n.IsDefined() && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map), key_path(key),
                 source_);
}

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (const auto& kv : node_) out.push_back(kv.first.as<std::string>());
  return out;
}

void Section::ignore(const std::initializer_list<const char*>& keys) {
  for (const char* k : keys) ignored_.insert(k);
}

void Section::ignore(const std::string& key) { ignored_.insert(key); }

void Section::finish(std::vector<std::string>* ignored_out) {
  std::vector<std::string> unknown;
  std::vector<std::string> known;
  known.insert(known.end(), used_.begin(), used_.end());
  known.insert(known.end(), ignored_.begin(), ignored_.end());
  for (const auto& k : keys()) {
    if (used_.count(k)) continue;
    if (ignored_.count(k)) {
      if (ignored_out) ignored_out->push_back(key_path(k));
      continue;
    }
    unknown.push_back(k);
  }
  if (unknown.empty()) return;
  std::string msg = source_ + ": unknown key" + (unknown.size() > 1 ? "s" : "") + ":";
  for (const auto& k : unknown) {
    msg += " '" + key_path(k) + "'";
    const std::string hint = closest_match(k, known);
    if (!hint.empty()) msg += " (did you mean '" + key_path(hint) + "'?)";
    msg += ";";
  }
  msg.pop_back();
  throw ConfigError(msg);
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    // Levenshtein distance, O(len^2) on short keys.
    std::vector<std::size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        const std::size_t sub = prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = c;
    }
  }
  return best;
}

}  // namespace samdeblur::config
