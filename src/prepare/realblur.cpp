// RealBlur-J (Rim et al., ECCV 2020) as published: RealBlur_J_{test,train}_list.txt
// beside the RealBlur-J_ECC_IMCORR_centroid_itensity_ref/ folder, one pair per line,
//   <scene-root>/<scene>/gt/gt_<k>.png <scene-root>/<scene>/blur/blur_<k>.png
// (paths relative to the list's folder). Both files are copied under the name
// RealBlur-J-<scene>-<gt file stem>.png, as SAM-Deblur's
// scripts/data_preparation/0_RealBlurJ_origin_to_standard.py names them (scene = the
// second path component, stem = the file name up to its first '.').
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "preparers.h"
#include "samdeblur/core/error.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare::detail {

std::vector<PairSource> realblur_j_pairs(const fs::path& source, const std::string& split) {
  const fs::path list = source / ("RealBlur_J_" + split + "_list.txt");
  std::ifstream in(list);
  if (!in) throw FileError(list.string(), "cannot open the RealBlur-J list");
  std::vector<PairSource> pairs;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream fields(line);
    std::string gt, blur, extra;
    if (!(fields >> gt)) continue;  // blank line
    if (!(fields >> blur) || (fields >> extra)) {
      throw FileError(
          list.string(),
          fmt::format("line {}: expected '<gt path> <blur path>', got '{}'", line_no, line));
    }
    const fs::path gt_rel(gt);
    auto it = gt_rel.begin();
    if (std::distance(gt_rel.begin(), gt_rel.end()) < 3) {
      throw FileError(list.string(),
                      fmt::format("line {}: gt path '{}' has no scene folder", line_no, gt));
    }
    const std::string scene = (++it)->string();
    const std::string file = gt_rel.filename().string();
    const std::string stem = file.substr(0, file.find('.'));
    const fs::path gt_path = source / gt_rel, blur_path = source / blur;
    if (!fs::is_regular_file(gt_path)) missing_partner(gt_path, blur_path);
    if (!fs::is_regular_file(blur_path)) missing_partner(blur_path, gt_path);
    // The official script always writes .png (RealBlur-J files are PNG).
    PairSource p{"RealBlur-J-" + scene + "-" + stem, blur_path, gt_path};
    pairs.push_back(p);
  }
  return pairs;
}

}  // namespace samdeblur::prepare::detail
