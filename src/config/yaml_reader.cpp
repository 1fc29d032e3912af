#include "samdeblur/config/yaml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace samdeblur::config {

YAML::Node load_yaml_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw FileError(path, "config file not found");
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) throw ConfigError(path + ": top level of a config must be a mapping");
    return root;
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  } catch (const YAML::BadFile&) {
    throw FileError(path, "cannot read config file");
  }
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
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + key_path + ": cannot parse value '" + value_text + "': " + e.what());
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
    if constexpr (std::is_same_v<T, bool>) expected = "true/false";
    else if constexpr (std::is_integral_v<T>) expected = "an integer";
    else if constexpr (std::is_floating_point_v<T>) expected = "a number";
    else if constexpr (std::is_same_v<T, std::string>) expected = "a string";
    else expected = "a list";
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

#define SAMDEBLUR_SECTION_INSTANTIATE(T)                                 \
  template T Section::get<T>(const std::string&, const T&);             \
  template T Section::required<T>(const std::string&);                  \
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
