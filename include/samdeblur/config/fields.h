#pragma once
// Options described once. An option struct lists its fields in one static
// member template,
//
//   template <class Self, class V>
//   static void fields(Self& self, V&& visit) {
//     visit(config::Field{"points_per_batch", "prompts per decoder batch"}.at_least(1),
//           self.points_per_batch);
//     ...
//   }
//
// (Self is the struct or its const form), and everything users see is derived
// from that list: the YAML reader (read_fields), range checks (check_fields),
// the canonical "name=value" text used in cache keys (fields_text), and the
// CLI flags and --help of the apps (config/cli_fields.h). A field type needs a
// FieldCodec; scalars, strings and std::optional of them have one here, other
// types (tensors, enums) get a specialisation beside the struct that uses them.
#include <fmt/format.h>

#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/error.h"

namespace samdeblur::config {

// Name (the YAML key; the CLI flag is --name with '_' -> '-'), help text and
// an optional numeric range of one field.
struct Field {
  const char* name = "";
  const char* help = "";
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;  // min itself excluded
  bool max_open = false;  // max itself excluded

  constexpr Field at_least(double v) const { return with_min(v, false); }
  constexpr Field above(double v) const { return with_min(v, true); }
  constexpr Field at_most(double v) const { return with_max(v, false); }
  constexpr Field below(double v) const { return with_max(v, true); }

  bool has_min() const { return min != -std::numeric_limits<double>::infinity(); }
  bool has_max() const { return max != std::numeric_limits<double>::infinity(); }
  bool in_range(double v) const {
    if (has_min() && (min_open ? !(v > min) : !(v >= min))) return false;
    if (has_max() && (max_open ? !(v < max) : !(v <= max))) return false;
    return true;
  }
  // ">= 1", "> 0", "in [0, 1)", "" when unbounded.
  std::string range_text() const {
    if (has_min() && has_max())
      return fmt::format("in {}{}, {}{}", min_open ? '(' : '[', min, max, max_open ? ')' : ']');
    if (has_min()) return fmt::format("{} {}", min_open ? ">" : ">=", min);
    if (has_max()) return fmt::format("{} {}", max_open ? "<" : "<=", max);
    return "";
  }

 private:
  constexpr Field with_min(double v, bool open) const {
    Field f = *this;
    f.min = v;
    f.min_open = open;
    return f;
  }
  constexpr Field with_max(double v, bool open) const {
    Field f = *this;
    f.max = v;
    f.max_open = open;
    return f;
  }
};

// How one field type is read from YAML and written as canonical text:
//   static void read(Section& s, const Field& f, T& value);  // absent key: keep value
//   static std::string text(const T& value);
template <class T, class Enable = void>
struct FieldCodec;  // no generic codec: a type without one does not compile

template <class T>
inline constexpr bool is_field_scalar_v = std::is_arithmetic_v<T> || std::is_same_v<T, std::string>;

template <class T>
struct FieldCodec<T, std::enable_if_t<is_field_scalar_v<T>>> {
  static void read(Section& s, const Field& f, T& value) {
    if constexpr (std::is_same_v<T, float>)
      value = static_cast<float>(s.get<double>(f.name, value));
    else
      value = s.get<T>(f.name, value);
  }
  // Integers as digits, floating point in shortest round-trip form (fmt "{}").
  static std::string text(const T& value) {
    if constexpr (std::is_same_v<T, bool>)
      return value ? "true" : "false";
    else
      return fmt::format("{}", value);
  }
};

// std::optional: an absent key keeps the default, `null` clears it; "none" in text.
template <class T>
struct FieldCodec<std::optional<T>, std::enable_if_t<is_field_scalar_v<T>>> {
  static void read(Section& s, const Field& f, std::optional<T>& value) {
    const YAML::Node n = s.node().IsMap() ? s.node()[f.name] : YAML::Node();
    const std::optional<T> v = s.optional<T>(f.name);  // records the key as read
    if (v)
      value = v;
    else if (n.IsDefined() && n.IsNull())
      value.reset();
  }
  static std::string text(const std::optional<T>& value) {
    return value ? FieldCodec<T>::text(*value) : "none";
  }
};

// Numeric value of a field for range checks (nullopt: not numeric, or unset).
template <class T>
std::optional<double> field_number(const T& value) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    return static_cast<double>(value);
  } else if constexpr (std::is_same_v<T, std::optional<int64_t>> ||
                       std::is_same_v<T, std::optional<int>> ||
                       std::is_same_v<T, std::optional<double>>) {
    if (value) return static_cast<double>(*value);
    return std::nullopt;
  } else {
    return std::nullopt;
  }
}

// "must be >= 1, got 0" when the value is outside the field's range, else "".
template <class T>
std::string field_range_error(const Field& f, const T& value) {
  const auto v = field_number(value);
  if (!v || f.in_range(*v)) return "";
  return fmt::format("must be {}, got {}", f.range_text(), *v);
}

// Visits every field of `options` (const or not) as visit(const Field&, value&).
template <class Options, class Visitor>
void for_each_field(Options& options, Visitor&& visit) {
  std::remove_const_t<Options>::fields(options, std::forward<Visitor>(visit));
}

// Field names in declaration order.
template <class Options>
std::vector<std::string> field_names() {
  std::vector<std::string> names;
  const Options o{};
  for_each_field(o, [&](const Field& f, const auto&) { names.push_back(f.name); });
  return names;
}

// Reads every declared field present in `s` (absent ones keep their value) and
// range-checks it; errors name the file and the dotted key. Does not call
// s.finish(): the caller may read further keys of the same mapping.
template <class Options>
void read_fields(Section& s, Options& options) {
  for_each_field(options, [&s](const Field& f, auto& value) {
    using T = std::decay_t<decltype(value)>;
    FieldCodec<T>::read(s, f, value);
    const std::string err = field_range_error(f, value);
    if (!err.empty())
      throw ConfigError(fmt::format("{}: {}: {}", s.source(), s.key_path(f.name), err));
  });
}

// Range check of every field: ConfigError "name: must be >= 1, got 0".
template <class Options>
void check_fields(const Options& options) {
  for_each_field(options, [](const Field& f, const auto& value) {
    const std::string err = field_range_error(f, value);
    if (!err.empty()) throw ConfigError(fmt::format("{}: {}", f.name, err));
  });
}

// One "<prefix>.<name>=<text>\n" line per field, in declaration order (the
// canonical description used in cache keys: a declared field cannot be missed).
template <class Options>
std::string fields_text(const Options& options, const std::string& prefix) {
  std::string out;
  for_each_field(options, [&](const Field& f, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    out += fmt::format("{}.{}={}\n", prefix, f.name, FieldCodec<T>::text(value));
  });
  return out;
}

}  // namespace samdeblur::config
