#include "samdeblur/sweep/sweep_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/error.h"

namespace samdeblur::sweep {
namespace fs = std::filesystem;

namespace {

// Relative to the sweep file's folder; "~/..." is kept (expanded where it is used).
std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute() || p == "~" || p.rfind("~/", 0) == 0) return p;
  return (fs::path(base) / p).lexically_normal().string();
}

// The items of the list `key` of the top-level mapping (marked used): a missing key,
// or anything but a non-empty list of mappings, is an error.
std::vector<config::Section> sequence(const YAML::Node& root, config::Section& s,
                                      const std::string& key) {
  s.ignore(key);
  const YAML::Node n = root[key];
  if (!n.IsDefined() || n.IsNull())
    throw ConfigError(fmt::format("{}: required key '{}' is missing", s.source(), key));
  if (!n.IsSequence() || n.size() == 0)
    throw ConfigError(fmt::format("{}: '{}' must be a non-empty list of mappings, got '{}'",
                                  s.source(), key, YAML::Dump(n)));
  std::vector<config::Section> out;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsMap())
      throw ConfigError(fmt::format("{}: {}[{}] must be a mapping, got '{}'", s.source(), key, i,
                                    YAML::Dump(n[i])));
    out.emplace_back(n[i], fmt::format("{}[{}]", key, i), s.source());
  }
  return out;
}

// A non-empty name, unique among `seen`, whose slug is unique too.
std::string unique_name(config::Section& s, std::set<std::string>& seen,
                        std::set<std::string>& seen_slugs) {
  const std::string name = s.required<std::string>("name");
  if (name.empty())
    throw ConfigError(fmt::format("{}: {} must not be empty", s.source(), s.key_path("name")));
  if (!seen.insert(name).second)
    throw ConfigError(
        fmt::format("{}: {} = '{}' is used twice", s.source(), s.key_path("name"), name));
  if (!seen_slugs.insert(slug(name)).second)
    throw ConfigError(fmt::format("{}: {} = '{}' gives the folder name '{}' of another entry",
                                  s.source(), s.key_path("name"), name, slug(name)));
  return name;
}

YAML::Node resolve_mask_source(config::Section& s, const std::string& base) {
  if (!s.has("mask_source")) {
    s.ignore("mask_source");
    return YAML::Node();
  }
  config::Section m = s.child("mask_source");  // throws unless a mapping
  YAML::Node out = YAML::Clone(m.node());
  for (const char* key : {"checkpoint", "cache_dir", "folder"}) {
    const YAML::Node v = out[key];
    if (v.IsDefined() && v.IsScalar()) out[key] = resolve(base, v.as<std::string>());
  }
  return out;
}

// `config`: a file, or a mapping {<dataset>: file, default: file}.
void parse_variant_config(config::Section& v, const std::string& base, Variant& variant) {
  const YAML::Node n = v.node()["config"];
  if (!n.IsDefined() || !n.IsMap()) {
    variant.config = resolve(base, v.required<std::string>("config"));
    return;
  }
  config::Section per = v.child("config");
  for (const auto& key : per.keys()) {
    const std::string file = resolve(base, per.required<std::string>(key));
    if (key == "default")
      variant.config = file;
    else
      variant.config_per_dataset[key] = file;
  }
  per.finish(nullptr);
}

// Every per-dataset config names a dataset; every dataset has a config.
void check_variant_configs(const SweepConfig& c) {
  for (std::size_t i = 0; i < c.variants.size(); ++i) {
    const Variant& v = c.variants[i];
    for (const auto& [name, file] : v.config_per_dataset)
      if (std::none_of(c.datasets.begin(), c.datasets.end(),
                       [&](const SweepDataset& d) { return d.name == name; }))
        throw ConfigError(fmt::format("{}: variants[{}].config.{} names no dataset of this sweep",
                                      c.source, i, name));
    for (const auto& d : c.datasets)
      if (v.config_for(d.name).empty())
        throw ConfigError(
            fmt::format("{}: variants[{}].config has no entry for dataset '{}' (and no 'default')",
                        c.source, i, d.name));
  }
}

std::optional<double> optional_number(config::Section& s, const std::string& key) {
  return s.optional<double>(key);
}

Reference parse_reference(config::Section ref, const SweepConfig& c) {
  Reference r;
  r.source = ref.get<std::string>("source", "");
  config::Section values = ref.child("values");
  for (const auto& v : values.keys()) {
    const bool known_variant = std::any_of(c.variants.begin(), c.variants.end(),
                                           [&](const Variant& x) { return x.name == v; });
    if (!known_variant)
      throw ConfigError(
          fmt::format("{}: {} names no variant of this sweep", c.source, values.key_path(v)));
    config::Section per_variant = values.child(v);
    for (const auto& d : per_variant.keys()) {
      const bool known_dataset = std::any_of(c.datasets.begin(), c.datasets.end(),
                                             [&](const SweepDataset& x) { return x.name == d; });
      if (!known_dataset)
        throw ConfigError(fmt::format("{}: {} names no dataset of this sweep", c.source,
                                      per_variant.key_path(d)));
      config::Section cell = per_variant.child(d);
      ReferenceValue value;
      value.psnr = optional_number(cell, "psnr");
      value.ssim = optional_number(cell, "ssim");
      if (const auto mcr = optional_number(cell, "mcr_percent")) value.mcr = *mcr / 100.0;
      cell.finish(nullptr);
      r.values[v][d] = value;
    }
    per_variant.finish(nullptr);
  }
  values.finish(nullptr);
  ref.finish(nullptr);
  return r;
}

}  // namespace

const ReferenceValue* Reference::find(const std::string& variant,
                                      const std::string& dataset) const {
  const auto v = values.find(variant);
  if (v == values.end()) return nullptr;
  const auto d = v->second.find(dataset);
  return d == v->second.end() ? nullptr : &d->second;
}

const std::string& Variant::config_for(const std::string& dataset) const {
  const auto it = config_per_dataset.find(dataset);
  return it == config_per_dataset.end() ? config : it->second;
}

std::string slug(const std::string& name) {
  std::string out;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    out += ok ? ch : '_';
  }
  if (out == "." || out == "..") out = "_" + out;
  return out;
}

SweepConfig parse_sweep_config(const YAML::Node& root, const std::string& source) {
  if (!root.IsMap())
    throw ConfigError(
        fmt::format("{}: a sweep file must be a mapping (name, variants, datasets)", source));
  SweepConfig c;
  c.source = source;
  c.base_dir = fs::absolute(fs::path(source)).parent_path().lexically_normal().string();
  config::Section top(root, "", source);
  c.name = top.required<std::string>("name");
  if (c.name.empty()) throw ConfigError(fmt::format("{}: name must not be empty", source));

  std::set<std::string> names, slugs;
  for (auto& v : sequence(root, top, "variants")) {
    Variant variant;
    variant.name = unique_name(v, names, slugs);
    parse_variant_config(v, c.base_dir, variant);
    variant.checkpoint = resolve(c.base_dir, v.required<std::string>("checkpoint"));
    v.finish(nullptr);
    c.variants.push_back(variant);
  }
  names.clear();
  slugs.clear();
  for (auto& d : sequence(root, top, "datasets")) {
    SweepDataset ds;
    ds.name = unique_name(d, names, slugs);
    ds.dataroot_lq = resolve(c.base_dir, d.get<std::string>("dataroot_lq", ""));
    ds.dataroot_gt = resolve(c.base_dir, d.get<std::string>("dataroot_gt", ""));
    ds.dataroot_label_masks = resolve(c.base_dir, d.get<std::string>("dataroot_label_masks", ""));
    ds.dataroot_grouped_masks =
        resolve(c.base_dir, d.get<std::string>("dataroot_grouped_masks", ""));
    ds.mask_source = resolve_mask_source(d, c.base_dir);
    d.finish(nullptr);
    c.datasets.push_back(ds);
  }
  check_variant_configs(c);
  if (top.has("reference"))
    c.reference = parse_reference(top.child("reference"), c);
  else
    top.ignore("reference");
  top.finish(nullptr);
  return c;
}

SweepConfig load_sweep_config(const std::string& path) {
  return parse_sweep_config(config::load_yaml_file(path), path);
}

}  // namespace samdeblur::sweep
