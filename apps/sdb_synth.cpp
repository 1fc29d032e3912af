// sdb-synth: the embedded demo dataset. Photos -> GoPro-like train / test pairs
// with synthetic camera-shake blur and superpixel masks (samdeblur::synth).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "samdeblur/core/app.h"
#include "samdeblur/core/cli.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/synth/demo_dataset.h"

namespace slog = samdeblur::log;
namespace synth = samdeblur::synth;

int main(int argc, char** argv) {
  CLI::App app{
      "sdb-synth: GoPro-like demo dataset (synthetic camera shake, superpixel masks) from photos"};
  synth::DemoDatasetOptions o;
  bool quiet = false, gamma_average = true;
  app.add_option("--photos", o.photos, "a sharp photo or a folder of photos")->required();
  app.add_option("-o,--output", o.output_dir, "output folder (train/, test/, manifest.json)")
      ->required();
  app.add_option("--train-per-photo", o.train_per_photo, "training crops per photo")
      ->capture_default_str()
      ->check(CLI::Range(0, 999));
  app.add_option("--test-per-photo", o.test_per_photo, "test crops per photo")
      ->capture_default_str()
      ->check(CLI::Range(0, 999));
  app.add_option("--crop", o.train_crop, "training crop side, pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 16384));
  app.add_option("--test-crop", o.test_crop, "test crop side, pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 16384));
  app.add_option("--frames", o.trajectory.frames, "averaged frames per blurry image (odd)")
      ->capture_default_str()
      ->check(CLI::Range(1, 999));
  app.add_option("--max-shift", o.trajectory.max_shift,
                 "largest camera displacement from the middle frame, pixels")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  app.add_option("--max-rotation", o.trajectory.max_rotation_deg,
                 "largest rotation from the middle frame, degrees (0: translations only)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 180.0));
  app.add_option("--gamma-average", gamma_average,
                 "average the frames in linear light (gamma 2.2), as GoPro")
      ->capture_default_str();
  app.add_option("--superpixel-size", o.superpixels.region_size,
                 "superpixel region size of the masks, pixels")
      ->capture_default_str()
      ->check(CLI::Range(2, 4096));
  app.add_option("--seed", o.seed, "seed of crops and trajectories")->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "no progress bar; log warnings and errors only");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  samdeblur::apply_quiet(quiet);
  return samdeblur::run_guarded([&]() -> int {
    o.blur.linear_light = gamma_average;
    o.progress = !quiet;
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    slog::info(fmt::format(
        "seed {}; {} frames, max shift {} px, max rotation {} deg, {} averaging; masks: SLIC "
        "superpixels (region {} px) of the blurry input, NOT Segment Anything",
        o.seed, o.trajectory.frames, o.trajectory.max_shift, o.trajectory.max_rotation_deg,
        o.blur.linear_light ? "linear-light (gamma 2.2)" : "plain", o.superpixels.region_size));
    const auto summary = synth::build_demo_dataset(o);
    int64_t train = 0, test = 0;
    for (const auto& s : summary.samples) (s.split == "train" ? train : test) += 1;
    slog::info(fmt::format("{} train and {} test pairs in {} ({:.1f}s); manifest: {}/manifest.json",
                           train, test, o.output_dir, summary.seconds, o.output_dir));
    return 0;
  });
}
