#pragma once
// Strict, typed access to a YAML mapping (detectron2/yacs style): every key that
// is read is recorded, so that finish() can reject keys nobody reads (typos)
// with the dotted path, and list keys that are known but unused by this tool.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "samdeblur/core/error.h"

namespace samdeblur::config {

// Most nodes a config may hold once aliases are expanded (an alias bomb of nine levels
// of ten aliases expands to 10^9 nodes from a few hundred bytes).
inline constexpr uint64_t kMaxYamlNodes = 1000000;

// Loads a YAML file; parse errors become ConfigError naming file, line, column.
// Before the tree is built, the parser's events are checked; each problem is a
// ConfigError "<path>:<line>: ...": a tag other than the core schema's !!str !!int
// !!float !!bool !!null !!map !!seq (e.g. !!python/object/apply), a key repeated in a
// mapping (naming both lines), more than kMaxYamlNodes nodes with aliases expanded, a
// scalar that is not valid UTF-8. A directory or missing path is a FileError.
YAML::Node load_yaml_file(const std::string& path);
// The same for YAML text; `source` names it in messages.
YAML::Node load_yaml_text(const std::string& text, const std::string& source);

// Byte offset of the first invalid UTF-8 sequence in `s` (overlong forms, surrogates and
// code points above U+10FFFF are invalid), or std::string::npos.
size_t invalid_utf8_offset(const std::string& s);

// Applies "a.b.c=value" to the tree (value parsed as YAML, so lists and
// numbers work: --set network_g.enc_blk_nums=[1,1,1,28]). Intermediate maps are
// created. Throws ConfigError on a malformed assignment; the value gets the checks of
// load_yaml_file.
void apply_override(YAML::Node& root, const std::string& assignment);

class Section {
 public:
  // `path` is the dotted path of this mapping ("" for the root), `source` the file.
  Section(YAML::Node node, std::string path, std::string source);

  bool has(const std::string& key) const;
  // Typed getters; a wrong type is a ConfigError naming path.key and the value.
  template <typename T>
  T get(const std::string& key, const T& fallback);
  template <typename T>
  T required(const std::string& key);
  template <typename T>
  std::optional<T> optional(const std::string& key);
  // A nested mapping (an empty one if absent). The child records its own keys.
  Section child(const std::string& key);
  // Keys of this mapping, in file order.
  std::vector<std::string> keys() const;
  // Marks keys that are valid in the official schema but unused by this tool.
  void ignore(const std::initializer_list<const char*>& keys);
  void ignore(const std::string& key);

  // Throws ConfigError for every key neither read nor ignored (all listed at
  // once, with a "did you mean" hint), and appends ignored keys that are
  // present to `ignored_out` as dotted paths.
  void finish(std::vector<std::string>* ignored_out);

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  std::string key_path(const std::string& key) const;
  const YAML::Node& node() const { return node_; }

 private:
  YAML::Node lookup(const std::string& key);
  YAML::Node node_;
  std::string path_;
  std::string source_;
  std::set<std::string> used_;
  std::set<std::string> ignored_;
};

// Closest candidate by edit distance (empty if none is close).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace samdeblur::config
