// ReLoBlur (Li et al., AAAI 2023) as published by LeiaLi/ReLoBlur:
//   {test,train}/<scene>/<sequence>/<frame>_blur.png and <frame>_sharp.png
// (the layout its loader globs, <split>/*/*/*sharp.png). The test split has 395 pairs,
// the number SAM-Deblur's ReLoBlur MCR values are multiples of. SAM-Deblur publishes
// no ReLoBlur script, so the names are ours: <scene>_<sequence>_<frame>.png.
#include "preparers.h"
#include "samdeblur/core/error.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare::detail {

namespace {

// "<frame>" of "<frame><suffix>" or "" when the name does not end with suffix.
std::string frame_of(const fs::path& file, const std::string& suffix) {
  const auto name = file.filename().string();
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return "";
  }
  return name.substr(0, name.size() - suffix.size());
}

}  // namespace

std::vector<PairSource> reloblur_pairs(const fs::path& source, const std::string& split) {
  std::vector<PairSource> pairs;
  for (const auto& scene : list_dirs(source / split)) {
    for (const auto& seq : list_dirs(scene)) {
      for (const auto& f : list_files(seq, ".png")) {
        if (const auto frame = frame_of(f, "_sharp.png"); !frame.empty()) {
          const fs::path blur = seq / (frame + "_blur.png");
          if (!fs::is_regular_file(blur)) missing_partner(blur, f);
          pairs.push_back(
              {scene.filename().string() + "_" + seq.filename().string() + "_" + frame, blur, f});
        } else if (const auto b = frame_of(f, "_blur.png"); !b.empty()) {
          const fs::path sharp = seq / (b + "_sharp.png");
          if (!fs::is_regular_file(sharp)) missing_partner(sharp, f);
        }
      }
    }
  }
  return pairs;
}

}  // namespace samdeblur::prepare::detail
