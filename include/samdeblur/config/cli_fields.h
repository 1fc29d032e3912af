#pragma once
// CLI11 flags derived from declared option fields (config/fields.h), for the
// apps: one --flag per scalar field (--points-per-side from points_per_side),
// with the field's help, its default shown, and its range checked (a value out
// of range is a usage error naming the flag). Header-only; apps and tests only
// (the library does not depend on CLI11).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "samdeblur/config/fields.h"
#include "samdeblur/core/cli.h"

namespace samdeblur::cli {

// "--" + prefix + name with '_' replaced by '-'.
inline std::string flag_name(const std::string& prefix, const std::string& name) {
  std::string out = "--" + prefix + name;
  for (char& c : out)
    if (c == '_') c = '-';
  return out;
}

// A CLI11 validator for a field's range (none when unbounded).
inline CLI::Validator range_validator(const config::Field& field) {
  return CLI::Validator(
      [field](std::string& text) -> std::string {
        double v = 0;
        try {
          std::size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) throw std::invalid_argument(text);
        } catch (const std::exception&) {
          return fmt::format("'{}' is not a number", text);
        }
        if (!field.in_range(v)) return fmt::format("must be {}, got {}", field.range_text(), text);
        return "";
      },
      field.range_text());
}

template <class T>
struct is_cli_optional : std::false_type {};
template <class T>
struct is_cli_optional<std::optional<T>> : std::bool_constant<config::is_field_scalar_v<T>> {};

// Adds one flag per scalar (or optional scalar) field of `options`, bound to
// the field; other field types (tensors, lists) stay YAML-only. `aliases` maps
// a field name to an extra flag name listed first (kept for compatibility,
// e.g. {"region_size", "superpixel-size"}). Returns the flags added.
template <class Options>
std::vector<CLI::Option*> add_field_flags(CLI::App& app, Options& options,
                                          const std::string& prefix = "",
                                          const std::map<std::string, std::string>& aliases = {},
                                          const std::string& group = "Options") {
  std::vector<CLI::Option*> added;
  config::for_each_field(options, [&](const config::Field& f, auto& value) {
    using T = std::decay_t<decltype(value)>;
    std::string names = flag_name(prefix, f.name);
    const auto alias = aliases.find(f.name);
    if (alias != aliases.end()) names = flag_name("", alias->second) + "," + names;
    std::string help = f.help;
    CLI::Option* opt = nullptr;
    if constexpr (config::is_field_scalar_v<T>) {
      opt = app.add_option(names, value, help)->capture_default_str();
    } else if constexpr (is_cli_optional<T>::value) {
      using V = typename T::value_type;
      opt = app.add_option_function<V>(
                   names, [&value](const V& v) { value = v; }, help)
                ->default_str(config::FieldCodec<T>::text(value));
    } else {
      return;  // not settable from the command line
    }
    if (f.has_min() || f.has_max()) opt->check(range_validator(f));
    opt->group(group);
    added.push_back(opt);
  });
  return added;
}

}  // namespace samdeblur::cli
