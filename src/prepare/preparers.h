#pragma once
// Private: one function per published archive (src/prepare/<dataset>.cpp), dispatched
// by prepare.cpp. `split` is "test" or "train" (checked by the caller).
#include <filesystem>
#include <string>
#include <vector>

#include "samdeblur/prepare/output_tree.h"
#include "samdeblur/prepare/prepare.h"

namespace samdeblur::prepare::detail {

// GOPRO_Large/<split>/<sequence>/{blur,sharp}/<frame>.png.
std::vector<PairSource> gopro_pairs(const std::filesystem::path& source, const std::string& split);
// RealBlur_J_<split>_list.txt.
std::vector<PairSource> realblur_j_pairs(const std::filesystem::path& source,
                                         const std::string& split);
// <split'>/<split'>_blur_jpeg/<seq>/<frame>.jpg + _sharp (split' = val for test).
std::vector<PairSource> reds_pairs(const std::filesystem::path& source, const std::string& split);
// <split>/<scene>/<sequence>/<frame>_{blur,sharp}.png.
std::vector<PairSource> reloblur_pairs(const std::filesystem::path& source,
                                       const std::string& split);
// The crops (gopro_crops.cpp); returns the summary.
PrepareSummary gopro_crops(const PrepareOptions& options, int64_t expected_pairs);

// "<partner>: missing partner of <file>" as a FileError naming the missing file.
[[noreturn]] void missing_partner(const std::filesystem::path& missing,
                                  const std::filesystem::path& present);

}  // namespace samdeblur::prepare::detail
