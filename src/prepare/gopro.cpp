// GoPro (Nah et al., CVPR 2017) as published in GOPRO_Large.zip:
//   GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame>.png
// The `blur` folder (not blur_gamma) is the input, as in the prepared GoPro sets
// NAFNet and SAM-Deblur train and test on; the pair is named <sequence>-<frame>.png.
#include <map>

#include "preparers.h"
#include "samdeblur/core/error.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare::detail {

std::vector<PairSource> gopro_pairs(const fs::path& source, const std::string& split) {
  // Accept the folder that holds GOPRO_Large as well as GOPRO_Large itself.
  const fs::path root = fs::is_directory(source / "GOPRO_Large") ? source / "GOPRO_Large" : source;
  std::vector<PairSource> pairs;
  for (const auto& seq : list_dirs(root / split)) {
    const auto blur = list_files(seq / "blur", ".png");
    const auto sharp = list_files(seq / "sharp", ".png");
    std::map<std::string, fs::path> by_name;
    for (const auto& s : sharp) by_name[s.filename().string()] = s;
    for (const auto& b : blur) {
      const auto it = by_name.find(b.filename().string());
      if (it == by_name.end()) missing_partner(seq / "sharp" / b.filename(), b);
      pairs.push_back({seq.filename().string() + "-" + b.stem().string(), b, it->second});
      by_name.erase(it);
    }
    if (!by_name.empty()) {
      const auto& orphan = by_name.begin()->second;
      missing_partner(seq / "blur" / orphan.filename(), orphan);
    }
  }
  return pairs;
}

}  // namespace samdeblur::prepare::detail
