// sdb-deblur: deblur photos or folders end to end (masks included) with a
// SAM-Deblur / NAFNet checkpoint; no ground truth, no YAML. Thin shell over
// samdeblur::Deblurrer and deblur::run_batch (include/samdeblur/deblur/).
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/app.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/deblur/batch.h"
#include "samdeblur/deblur/deblurrer.h"
#include "samdeblur/masks/cache.h"

namespace slog = samdeblur::log;
namespace deblur = samdeblur::deblur;

namespace {

struct DeblurArgs {
  samdeblur::Deblurrer::Options d;
  deblur::BatchOptions batch;
  std::string sam, masks_dir, masks = "", mask_cache = "~/.cache/samdeblur/masks", json;
  bool quiet = false;
};

void add_flags(CLI::App& app, DeblurArgs& a) {
  app.add_option("inputs", a.batch.inputs, "image files, folders or glob patterns")->required();
  app.add_option("-o,--output", a.batch.output_dir, "output folder")->required();
  app.add_option("--checkpoint", a.d.checkpoint, "NAFNet / CAT / SegNAFNet checkpoint (.pth)")
      ->required();
  app.add_option("--config", a.d.config, "YAML file whose network_g gives the network");
  app.add_flag("--tlc,!--no-tlc", a.d.tlc,
               "recognised network in its TLC (*Local) form, as the official test configs")
      ->capture_default_str();
  app.add_option("--sam", a.sam, "masks from SAM with this checkpoint (sam_vit_h_4b8939.pth)");
  app.add_option("--masks-dir", a.masks_dir,
                 "precomputed masks: <stem>.png label maps or <stem>.npz grouped masks");
  app.add_option("--masks", a.masks, "superpixels: SLIC masks (no weights; demos)")
      ->check(CLI::IsMember({"superpixels"}));
  app.add_option("--model-type", a.d.masks.model_type, "SAM: vit_b, vit_l, vit_h or auto")
      ->check(CLI::IsMember({"vit_b", "vit_l", "vit_h", "auto"}));
  app.add_flag("--rgb", a.d.masks.rgb, "give SAM RGB images (the official script passes BGR)");
  app.add_option("--mask-cache", a.mask_cache,
                 "content-keyed mask cache shared with sdb-eval ('' = none)")
      ->capture_default_str();
  samdeblur::cli::add_field_flags(app, a.d.masks.generator, "", {}, "Generator (sam)");
  samdeblur::cli::add_field_flags(app, a.d.masks.superpixels, "superpixel-",
                                  {{"region_size", "superpixel-size"}}, "Superpixels");
  app.add_option("--format", a.batch.format, "output format")
      ->check(CLI::IsMember({"png", "jpg"}))
      ->capture_default_str();
  app.add_option("--quality", a.batch.quality, "JPEG quality")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_flag("--save-masks", a.batch.save_masks, "write <stem>_mask.png (the label map used)");
  app.add_flag("--compare", a.batch.compare,
               "write <stem>_compare.<format>: input | output | mask overlay");
  app.add_option("--tile", a.d.tiles.tile, "tile size in pixels (0 = whole image)")
      ->capture_default_str();
  app.add_option("--tile-overlap", a.d.tiles.overlap, "pixels shared by neighbouring tiles")
      ->capture_default_str();
  app.add_option("-d,--device", a.d.device, "cpu, cuda or cuda:N");
  app.add_option("--threads", a.d.threads, "intra-op CPU threads (0: torch's choice)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--precision", a.d.precision,
                 "network precision: fp32 (exact) or bf16 (CPUs with AVX512-BF16/AMX, or CUDA)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--memory-format", a.d.memory_format,
                 "auto (channels_last on the CPU, contiguous on CUDA), contiguous (exact) or "
                 "channels_last (+ fused kernels, fp32 rounding)")
      ->check(CLI::IsMember({"auto", "contiguous", "channels_last"}))
      ->capture_default_str();
  app.add_option("--sam-precision", a.d.masks.precision, "SAM precision: fp32 (exact) or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--json", a.json, "write the per-image JSON lines to FILE (default stdout)");
  app.add_flag("--allow-nonfinite", a.d.allow_nonfinite, "load NaN/Inf weights with a warning");
  app.add_flag("-q,--quiet", a.quiet, "no progress bar; log warnings and errors only");
}

// --sam / --masks-dir / --masks superpixels -> the one mask source.
void resolve_masks(DeblurArgs& a) {
  const int given = !a.sam.empty() + !a.masks_dir.empty() + !a.masks.empty();
  if (given > 1) throw samdeblur::Error("give at most one of --sam, --masks-dir, --masks");
  if (!a.sam.empty()) {
    a.d.masks.type = "sam";
    a.d.masks.checkpoint = a.sam;
  } else if (!a.masks_dir.empty()) {
    a.d.masks.type = "files";
    a.d.masks.files.folder = a.masks_dir;
  } else {
    a.d.masks.type = a.masks;
  }
  if (a.d.masks.on_the_fly() && !a.mask_cache.empty()) {
    a.d.masks.cache_dir = a.mask_cache;
    a.d.mask_cache_dir = samdeblur::masks::resolve_mask_cache_dir(a.d.masks, "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-deblur: deblur photos with a SAM-Deblur / NAFNet checkpoint"};
  DeblurArgs a;
  add_flags(app, a);
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  slog::setup_logging(slog::Level::info);
  if (a.quiet) slog::set_console_level(slog::Level::warn);
  samdeblur::ProgressBar::set_enabled(!a.quiet);
  return samdeblur::run_guarded([&]() -> int {
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    resolve_masks(a);
    samdeblur::Deblurrer deblurrer(a.d);
    slog::info(fmt::format("LibTorch {}, {} intra-op threads; {}", TORCH_VERSION,
                           torch::get_num_threads(), deblurrer.describe()));
    std::ofstream json_file;
    if (!a.json.empty()) {
      json_file.open(a.json, std::ios::app);
      if (!json_file) throw samdeblur::FileError(a.json, "cannot open for writing");
    }
    std::ostream& json_out = a.json.empty() ? std::cout : json_file;
    a.batch.progress = !a.quiet;
    const auto s = deblur::run_batch(deblurrer, a.batch, [&](const nlohmann::json& line) {
      json_out << line.dump() << std::endl;
    });
    slog::info(fmt::format("{} deblurred, {} skipped (done before), {} failed; outputs in {}",
                           s.done, s.skipped, s.failed, a.batch.output_dir));
    if (deblurrer.needs_masks() && !a.d.mask_cache_dir.empty())
      slog::info(fmt::format("mask cache {}: {} hits, {} misses", a.d.mask_cache_dir,
                             deblurrer.mask_cache_hits(), deblurrer.mask_cache_misses()));
    for (const auto& f : s.failures) slog::error("failed: " + f);
    return s.failed > 0 ? 1 : 0;
  });
}
