// The mask-source factory (see include/samdeblur/masks/source.h).
#include "samdeblur/masks/source.h"

#include <fmt/format.h>

#include "samdeblur/core/error.h"

namespace samdeblur::masks {

namespace {

using Maker = std::unique_ptr<MaskSource> (*)(const MaskSourceOptions&, MaskSourceContext);

std::unique_ptr<MaskSource> make_superpixels(const MaskSourceOptions& o, MaskSourceContext c) {
  return make_superpixel_source(o.superpixels, c.output_mode);
}
std::unique_ptr<MaskSource> make_files(const MaskSourceOptions& o, MaskSourceContext c) {
  return make_files_source(o.files, c.output_mode);
}
std::unique_ptr<MaskSource> make_sam(const MaskSourceOptions& o, MaskSourceContext c) {
  return make_sam_source(o, std::move(c));
}

// The registry: one line per source type.
const std::vector<std::pair<std::string, Maker>>& registry() {
  static const std::vector<std::pair<std::string, Maker>> kMaskSourceTypes = {
      {"sam", &make_sam},
      {"superpixels", &make_superpixels},
      {"files", &make_files},
  };
  return kMaskSourceTypes;
}

}  // namespace

const std::vector<std::string>& mask_source_types() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, maker] : registry()) out.push_back(name);
    return out;
  }();
  return names;
}

std::unique_ptr<MaskSource> make_mask_source(const MaskSourceOptions& options,
                                             MaskSourceContext context) {
  for (const auto& [name, maker] : registry())
    if (name == options.type) return maker(options, std::move(context));
  throw ConfigError(fmt::format("mask_source.type '{}' is not supported; valid: {}", options.type,
                                fmt::join(mask_source_types(), ", ")));
}

}  // namespace samdeblur::masks
