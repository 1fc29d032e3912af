// REDS (Nah et al., NTIRE 2019) as published in {val,train}_blur_jpeg.zip and
// {val,train}_sharp.zip:
//   <split>/<split>_blur_jpeg/<seq>/<frame>.jpg   <split>/<split>_sharp/<seq>/<frame>.png
// (the zips unpack to <split>/..., so both <source>/<split>/<split>_blur_jpeg and
// <source>/<split>_blur_jpeg are accepted). Pairs are named <seq>_<frame>, as NAFNet's
// scripts/data_preparation/reds.py flattens them; inputs stay JPEG (bytes copied).
// Split "test" is the whole validation set (30 x 100 = 3000 pairs): SAM-Deblur's REDS
// MCR values are multiples of 1/3000, not of 1/300 (NAFNet's val-300 subset).
#include <map>

#include "preparers.h"
#include "samdeblur/core/error.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare::detail {

std::vector<PairSource> reds_pairs(const fs::path& source, const std::string& split) {
  const std::string s = split == "test" ? "val" : split;
  auto folder = [&](const std::string& name) {
    return fs::is_directory(source / s / name) ? source / s / name : source / name;
  };
  const fs::path blur_root = folder(s + "_blur_jpeg"), sharp_root = folder(s + "_sharp");
  std::vector<PairSource> pairs;
  std::map<std::string, fs::path> sharp_seqs;
  for (const auto& d : list_dirs(sharp_root)) sharp_seqs[d.filename().string()] = d;
  for (const auto& seq : list_dirs(blur_root)) {
    const auto seq_name = seq.filename().string();
    const auto it_seq = sharp_seqs.find(seq_name);
    if (it_seq == sharp_seqs.end()) missing_partner(sharp_root / seq_name, seq);
    std::map<std::string, fs::path> sharp;
    for (const auto& f : list_files(it_seq->second, ".png")) sharp[f.stem().string()] = f;
    for (const auto& b : list_files(seq, ".jpg")) {
      const auto it = sharp.find(b.stem().string());
      if (it == sharp.end()) missing_partner(it_seq->second / (b.stem().string() + ".png"), b);
      pairs.push_back({seq_name + "_" + b.stem().string(), b, it->second});
      sharp.erase(it);
    }
    if (!sharp.empty()) {
      const auto& orphan = sharp.begin()->second;
      missing_partner(seq / (orphan.stem().string() + ".jpg"), orphan);
    }
    sharp_seqs.erase(it_seq);
  }
  if (!sharp_seqs.empty()) {
    missing_partner(blur_root / sharp_seqs.begin()->first, sharp_seqs.begin()->second);
  }
  return pairs;
}

}  // namespace samdeblur::prepare::detail
