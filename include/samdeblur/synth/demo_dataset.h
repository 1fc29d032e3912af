#pragma once
// The embedded demo dataset (sdb-synth): the photos committed under
// data/demo/photos turned into a GoPro-like training / test layout with
// synthetic camera-shake blur (synth/blur.h) and weight-free superpixel masks.
#include <cstdint>
#include <string>
#include <vector>

#include "samdeblur/masks/options.h"
#include "samdeblur/synth/blur.h"

namespace samdeblur::synth {

struct DemoDatasetOptions {
  std::string photos;      // an image or a folder of sharp photos (masks::list_input_images)
  std::string output_dir;  // receives train/, test/ and manifest.json
  int train_per_photo = 8;
  int test_per_photo = 2;
  int train_crop = 192;
  int test_crop = 256;
  uint64_t seed = 0;
  TrajectoryOptions trajectory;
  BlurOptions blur;
  masks::SuperpixelOptions superpixels;  // masks of the blurry input (SLIC, not SAM)
  bool progress = true;                  // progress bar on stderr

  // Throws ConfigError naming the field for out-of-range values.
  void validate() const;
};

// One generated pair, as recorded in <output_dir>/manifest.json.
struct SampleRecord {
  std::string split, name, photo;
  int x = 0, y = 0, size = 0;  // the crop of the photo that is the target
  uint64_t seed = 0;           // the sample's derived seed (sample_seed)
  double extent = 0;           // max_displacement of its trajectory, pixels
  int64_t superpixels = 0;     // SLIC superpixels of the input (= grouped masks while <= 256)
};

struct DemoDatasetSummary {
  std::vector<SampleRecord> samples;
  double seconds = 0;
};

// Seed of sample k of `split` ("train" / "test") for a photo: a mix of (seed,
// hash_name(photo stem), split, k), so adding or removing a photo changes no
// other photo's samples.
uint64_t sample_seed(uint64_t seed, const std::string& photo_stem, const std::string& split, int k);

// Sample file stem: "<photo stem>_<k:03d>".
std::string sample_name(const std::string& photo_stem, int k);

// Builds the GoPro-like layout (the folders sdb-eval's PairedImage*Dataset and
// the trainer read):
//   <out>/{train,test}/input/<name>.png          blurry input
//   <out>/{train,test}/target/<name>.png         sharp target (the middle frame)
//   <out>/{train,test}/input_mask/<name>.png     official label map (draw_segmask)
//   <out>/{train,test}/grouped_masks/<name>.npz  official grouped masks, key "masks"
//   <out>/manifest.json                          options + one record per sample; written last
// Per sample: a crop position drawn uniformly over the photo and a trajectory,
// both from the sample's seed; the blur is rendered on the crop plus a margin
// covering the trajectory's displacement (real photo content, reflected only
// past the photo's border) and the margin is cut off. The masks are SLIC
// superpixels of the *blurry* input (SAM-Deblur computes its test masks on the
// blurry input), written with masks::write_mask_file. Train and test crops of a
// photo are drawn independently and may overlap: the demo exercises the
// pipeline, it is not a benchmark. Files are written atomically and
// overwritten if present (a rerun with the same options rewrites the same
// bytes). Throws FileError naming the photo when it cannot be read or is
// smaller than a crop, and naming the output folder when its split folders
// hold files this run would not write (left from a larger run); both checks
// happen before anything is written.
DemoDatasetSummary build_demo_dataset(const DemoDatasetOptions& options);

}  // namespace samdeblur::synth
