// Dispatch of the preparers (prepare.h) and the pair-copying path they share.
#include "samdeblur/prepare/prepare.h"

#include <fmt/format.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "preparers.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare {

namespace {

using Lister = std::function<std::vector<PairSource>(const fs::path&, const std::string&)>;

struct Preparer {
  DatasetInfo info;
  Lister pairs;  // empty for gopro-crops
};

// The one declaration of every preparer: name, layout, published counts, lister.
const std::vector<Preparer>& preparers() {
  static const std::vector<Preparer> list = {
      {{"gopro", "GOPRO_Large/{train,test}/<sequence>/{blur,sharp}/*.png", 1111, 2103},
       detail::gopro_pairs},
      {{"gopro-crops",
        "the gopro output's train/{input,target}[,input_predict_mask,grouped_masks] -> 512 px "
        "crops, step 256",
        -1, 2103},
       nullptr},
      {{"realblur-j", "RealBlur_J_{test,train}_list.txt + the folders it names", 980, 3758},
       detail::realblur_j_pairs},
      {{"reds", "{val,train}/{val,train}_blur_jpeg|_sharp/<seq>/<frame>.jpg|png", 3000, 24000},
       detail::reds_pairs},
      {{"reloblur", "{test,train}/<scene>/<sequence>/<frame>_{blur,sharp}.png", 395, 2010},
       detail::reloblur_pairs},
  };
  return list;
}

}  // namespace

const std::vector<DatasetInfo>& datasets() {
  static const std::vector<DatasetInfo> list = [] {
    std::vector<DatasetInfo> out;
    for (const auto& p : preparers()) out.push_back(p.info);
    return out;
  }();
  return list;
}

namespace detail {

void missing_partner(const fs::path& missing, const fs::path& present) {
  throw FileError(missing.string(), "missing partner of " + present.string());
}

}  // namespace detail

PrepareSummary prepare_dataset(const std::string& dataset, const PrepareOptions& options) {
  const Preparer* prep = nullptr;
  std::string names;
  for (const auto& p : preparers()) {
    if (p.info.name == dataset) prep = &p;
    names += (names.empty() ? "" : ", ") + p.info.name;
  }
  if (!prep) throw Error("prepare: unknown dataset '" + dataset + "' (valid: " + names + ")");
  std::string split = options.split;
  if (split.empty()) split = prep->info.test_pairs < 0 ? "train" : "test";
  if (split == "val" && dataset == "reds") split = "test";
  const int64_t published = split == "test" ? prep->info.test_pairs : prep->info.train_pairs;
  if ((split != "test" && split != "train") || published < 0) {
    throw Error(fmt::format("prepare {}: unknown split '{}' (valid: {})", dataset, split,
                            prep->info.test_pairs < 0 ? "train" : "test, train"));
  }
  if (options.source.empty() || !fs::is_directory(options.source)) {
    throw FileError(options.source, "--source is not a folder");
  }
  if (options.output.empty()) throw Error("prepare: --output is empty");
  const int64_t expected = options.expected_pairs < 0 ? published : options.expected_pairs;

  if (!prep->pairs) return detail::gopro_crops(options, expected);

  // REDS has no test split: its validation set is what SAM-Deblur evaluates on.
  const std::string out_split = dataset == "reds" && split == "test" ? "val" : split;
  const auto pairs = prep->pairs(fs::path(options.source), split);
  check_count(fmt::format("{} {} in {}", dataset, split, options.source), expected,
              static_cast<int64_t>(pairs.size()));

  OutputTree tree(fs::path(options.output) / out_split, "manifest.json");
  PrepareSummary s;
  s.dataset = dataset;
  s.split = out_split;
  s.pairs = static_cast<int64_t>(pairs.size());
  s.skipped_pairs = copy_pairs(tree, pairs, options.progress, dataset + " " + out_split);
  std::vector<std::string> units;
  for (const auto& p : pairs) units.push_back(p.name);
  nlohmann::ordered_json header;
  header["dataset"] = dataset;
  header["split"] = out_split;
  header["source"] = fs::absolute(options.source).string();
  header["pairs"] = s.pairs;
  s.files = 2 * s.pairs;
  s.manifest = tree.finish(units, header.dump());
  log::info(fmt::format("{} {}: {} pairs ({} already done) -> {}", dataset, out_split, s.pairs,
                        s.skipped_pairs, s.manifest));
  return s;
}

std::vector<int> crop_grid(int length, int crop, int step, int thresh) {
  if (length < crop || crop <= 0 || step <= 0) {
    throw Error(fmt::format("crop_grid: side of {} px cannot hold a {} px crop", length, crop));
  }
  std::vector<int> starts;
  for (int s = 0; s + crop <= length; s += step) starts.push_back(s);
  if (length - (starts.back() + crop) > thresh) starts.push_back(length - crop);
  return starts;
}

}  // namespace samdeblur::prepare
