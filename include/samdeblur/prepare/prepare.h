#pragma once
// Benchmark preparation: each dataset as its authors publish it -> the layout the
// configs in configs/test/* and configs/train/GoPro/* read:
//
//   <output>/<split>/input/<name>.png|.jpg   blurry input (bytes copied unchanged)
//   <output>/<split>/target/<name>.png       sharp target (bytes copied unchanged)
//   <output>/<split>/manifest.json           relative path, size, SHA-256 per file (last)
//
// Expected archive layouts (`source` is the folder the archives were unpacked in):
//
//   gopro       GOPRO_Large/{train,test}/<sequence>/{blur,sharp}/<frame>.png
//               (Nah et al.; blur_gamma ignored) -> <sequence>-<frame>.png,
//               train 2103 pairs, test 1111 pairs.
//   realblur-j  RealBlur_J_{test,train}_list.txt ("<gt path> <blur path>" per line,
//               relative to source) -> RealBlur-J-<scene>-<gt file stem>.png, named
//               as SAM-Deblur scripts/data_preparation/0_RealBlurJ_origin_to_standard.py
//               does; test 980 pairs, train 3758.
//   reds        {val,train}/{val,train}_blur_jpeg/<seq>/<frame>.jpg and
//               {val,train}/{val,train}_sharp/<seq>/<frame>.png (REDS zips; the folders
//               may also sit directly in source) -> <seq>_<frame>.jpg / .png, as NAFNet
//               scripts/data_preparation/reds.py flattens them. Split "test" = the whole
//               validation set, 30 sequences x 100 frames = 3000 (inferred: SAM-Deblur's
//               REDS MCR values are multiples of 1/3000), written to <output>/val/.
//   reloblur    {test,train}/<scene>/<sequence>/<frame>_{blur,sharp}.png (the layout
//               LeiaLi/ReLoBlur's loader reads) -> <scene>_<sequence>_<frame>.png;
//               test 395 pairs (SAM-Deblur's MCR values are multiples of 1/395), train
//               2010. The names are ours: SAM-Deblur publishes no ReLoBlur script.
//   gopro-crops the gopro output's train/{input,target}[,input_predict_mask,
//               grouped_masks] -> train/{blur_crops,sharp_crops,
//               blur_predeblur_mask_crops,grouped_masks_crops}/<name>_s<NNN>.<ext>, the
//               512 px / step 256 / threshold 0 grid of SAM-Deblur crop_gopro.py and
//               crop_masks.py (see crop_grid()); manifest: train/manifest-crops.json.
//
// Every input is decoded completely (io::read_image_bgr) before it is copied, input and
// target must have the same size, every file must have its partner, and the pair count
// must equal the published one (PrepareOptions::expected_pairs). A run records each
// finished pair in "<manifest>.partial.tsv"; a rerun skips pairs whose files still have
// the recorded size and SHA-256, so an interrupted run completes. The manifest is
// written atomically after everything else, and the partial record is then removed.
#include <cstdint>
#include <string>
#include <vector>

namespace samdeblur::prepare {

struct PrepareOptions {
  std::string source;           // folder holding the unpacked archive(s)
  std::string output;           // folder the configs' dataroots point at (datasets/<Name>)
  std::string split = "";       // "test" (default; gopro-crops: "train") or "train"
  int64_t expected_pairs = -1;  // -1: the published count; 0: any; N: exactly N
  bool progress = false;        // progress bar on stderr
};

struct PrepareSummary {
  std::string dataset, split;  // split as written (REDS "test" -> "val")
  int64_t pairs = 0;           // pairs (gopro-crops: source images) prepared
  int64_t files = 0;           // files in the manifest
  int64_t skipped_pairs = 0;   // pairs found complete from an earlier run
  std::string manifest;        // path of the manifest written
};

// One preparer: its CLI name, what it reads, and the published pair counts.
struct DatasetInfo {
  std::string name;         // gopro, gopro-crops, realblur-j, reds, reloblur
  std::string description;  // archive layout, one line
  int64_t test_pairs;       // published count of the test split (-1: no test split)
  int64_t train_pairs;      // published count of the train split
};

// The preparers, in CLI order.
const std::vector<DatasetInfo>& datasets();

// Prepares `dataset` (a datasets() name). Throws samdeblur::Error naming the first
// bad file (undecodable, missing partner, size mismatch) or the count mismatch, and
// for an unknown dataset or split (listing the valid ones).
PrepareSummary prepare_dataset(const std::string& dataset, const PrepareOptions& options);

// Top-left corners along one side of `length` pixels, as crop_gopro.py's worker:
// 0, step, 2*step, ... while a whole crop fits, plus length - crop when more than
// `thresh` pixels are left over. Throws Error when length < crop.
std::vector<int> crop_grid(int length, int crop = 512, int step = 256, int thresh = 0);

}  // namespace samdeblur::prepare
