// `datasets.<key>.mask_source` of an eval config, read through the declared
// fields (see include/samdeblur/masks/options.h).
#include "samdeblur/masks/options.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>

#include "samdeblur/masks/sha256.h"
#include "samdeblur/masks/source.h"
#include "samdeblur/sam/precision.h"

namespace samdeblur::config {

void FieldCodec<std::vector<at::Tensor>>::read(Section& s, const Field& f,
                                               std::vector<at::Tensor>& value) {
  s.ignore(f.name);  // read from the node below (a nested list)
  const YAML::Node node = s.node().IsMap() ? s.node()[f.name] : YAML::Node();
  if (!node.IsDefined() || node.IsNull()) return;
  const std::string where = s.key_path(f.name);
  if (!node.IsSequence())
    throw ConfigError(fmt::format("{}: {} must be a list of grids (lists of [x, y] in [0, 1])",
                                  s.source(), where));
  std::vector<at::Tensor> grids;
  for (std::size_t i = 0; i < node.size(); ++i) {
    std::vector<double> flat;
    try {
      for (const auto& p : node[i]) {
        const auto xy = p.as<std::vector<double>>();
        if (xy.size() != 2) throw YAML::Exception(YAML::Mark::null_mark(), "not a pair");
        flat.insert(flat.end(), xy.begin(), xy.end());
      }
    } catch (const YAML::Exception&) {
      throw ConfigError(
          fmt::format("{}: {}[{}] must be a list of [x, y] pairs", s.source(), where, i));
    }
    for (double v : flat)
      if (!(v >= 0.0 && v <= 1.0))
        throw ConfigError(fmt::format("{}: {}[{}]: coordinates must lie in [0, 1], got {}",
                                      s.source(), where, i, v));
    const auto n = static_cast<int64_t>(flat.size() / 2);
    grids.push_back(torch::tensor(flat, torch::kFloat64).reshape({n, 2}));
  }
  value = std::move(grids);
}

std::string FieldCodec<std::vector<at::Tensor>>::text(const std::vector<at::Tensor>& value) {
  if (value.empty()) return "none";
  masks::Sha256 sha;
  for (const auto& grid : value) {
    const torch::Tensor t = grid.to(torch::kFloat64).contiguous();
    sha.update(fmt::format("({}, {});", t.size(0), t.size(1)));
    sha.update(t.data_ptr<double>(), static_cast<std::size_t>(t.numel()) * sizeof(double));
  }
  return fmt::format("{} grids sha256 {}", value.size(), sha.hex_digest());
}

}  // namespace samdeblur::config

namespace samdeblur::masks {

using config::Section;

sam::MaskGeneratorOptions parse_generator_options(Section g) {
  sam::MaskGeneratorOptions o;
  const YAML::Node pps = g.node().IsMap() ? g.node()["points_per_side"] : YAML::Node();
  const bool pps_given = pps.IsDefined() && !pps.IsNull();
  const bool pps_null = pps.IsDefined() && pps.IsNull();
  config::read_fields(g, o);
  if (!o.point_grids.empty()) {
    if (pps_given)
      throw ConfigError(
          fmt::format("{}: {} and {}: give exactly one of them (as the official "
                      "SamAutomaticMaskGenerator)",
                      g.source(), g.key_path("points_per_side"), g.key_path("point_grids")));
    o.points_per_side.reset();
  } else if (pps_null) {
    throw ConfigError(fmt::format("{}: {} is null but {} is not given", g.source(),
                                  g.key_path("points_per_side"), g.key_path("point_grids")));
  }
  // Masks are rasterised into label maps; the output format does not matter.
  o.output_mode = sam::OutputMode::uncompressed_rle;
  g.finish(nullptr);
  try {
    o.validate();
  } catch (const ConfigError& e) {  // "option: ..." -> "file: section.option: ..."
    throw ConfigError(fmt::format("{}: {}.{}", g.source(), g.path(), e.what()));
  }
  return o;
}

MaskSourceOptions parse_mask_source(Section& d, const std::string& dataset_type) {
  const YAML::Node node = d.node()["mask_source"];
  const std::string types = fmt::format("{}", fmt::join(mask_source_types(), ", "));
  if (!node.IsMap())
    throw ConfigError(fmt::format("{}: {} must be a mapping with a 'type' ({})", d.source(),
                                  d.key_path("mask_source"), types));
  Section s = d.child("mask_source");
  MaskSourceOptions m;
  m.type = s.required<std::string>("type");
  const auto& valid = mask_source_types();
  if (std::find(valid.begin(), valid.end(), m.type) == valid.end())
    throw ConfigError(fmt::format("{}: {} = '{}' is not supported; valid: {}", s.source(),
                                  s.key_path("type"), m.type, types));
  m.cache_dir = s.get<std::string>("cache_dir", "");
  m.encoding = s.get<std::string>("encoding", "official");
  if (m.encoding != "official" && m.encoding != "exclusive")
    throw ConfigError(fmt::format("{}: {} must be 'official' or 'exclusive', got '{}'", s.source(),
                                  s.key_path("encoding"), m.encoding));
  if (m.encoding == "exclusive") {
    if (dataset_type != "PairedImageGroupMaskDataset")
      throw ConfigError(fmt::format(
          "{}: {} = exclusive needs PairedImageGroupMaskDataset (a label map for the CAT "
          "channel is always the official draw_segmask)",
          s.source(), s.key_path("encoding")));
    m.exclusive_order = s.get<std::string>("exclusive_order", "generator");
    if (m.exclusive_order != "generator" && m.exclusive_order != "smallest_first")
      throw ConfigError(fmt::format("{}: {} must be 'generator' or 'smallest_first', got '{}'",
                                    s.source(), s.key_path("exclusive_order"), m.exclusive_order));
  }
  if (m.type == "sam") {
    m.checkpoint = s.required<std::string>("checkpoint");
    m.model_type = s.get<std::string>("model_type", "auto");
    if (m.model_type != "auto" && m.model_type != "vit_b" && m.model_type != "vit_l" &&
        m.model_type != "vit_h")
      throw ConfigError(
          fmt::format("{}: {} = '{}' is not supported; valid: auto, vit_b, vit_l, "
                      "vit_h",
                      s.source(), s.key_path("model_type"), m.model_type));
    m.rgb = s.get<bool>("rgb", false);
    m.precision = s.get<std::string>("precision", "fp32");
    try {
      sam::precision_from_name(m.precision, s.key_path("precision"));
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("{}: {}", s.source(), e.what()));
    }
    m.generator = parse_generator_options(s.child("generator"));
  } else if (m.type == "superpixels") {
    config::read_fields(s, m.superpixels);
  } else if (m.type == "files") {
    config::read_fields(s, m.files);
    if (m.files.folder.empty())
      throw ConfigError(
          fmt::format("{}: {} is required with type files", s.source(), s.key_path("folder")));
  }
  s.finish(nullptr);
  return m;
}

}  // namespace samdeblur::masks
