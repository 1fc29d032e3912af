// sdb-masks: SAM masks for SAM-Deblur (scripts/data_preparation/1_create_masks_with_sam.py
// and 2_masks_to_grouped_masks.py in one step). Thin wrapper over samdeblur::masks; the
// generator, superpixel and files-source flags are derived from the declared option fields.
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/app.h"
#include "samdeblur/core/device.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/masks/job.h"
#include "samdeblur/masks/source.h"

namespace masks = samdeblur::masks;
namespace sam = samdeblur::sam;
namespace slog = samdeblur::log;

namespace {

struct MasksArgs {
  std::string format = "label-png", device = "cpu", exclusive_order = "generator";
  bool save_embeddings = false, quiet = false, half = false;
  int threads = 0;
  masks::MaskJobOptions job;
  masks::MaskSourceOptions src;
};

void add_flags(CLI::App& app, MasksArgs& a) {
  a.src.type = "sam";
  app.add_option("--checkpoint", a.src.checkpoint,
                 "official SAM checkpoint (sam_vit_b_01ec64.pth, ...)");
  app.add_option("--model-type", a.src.model_type,
                 "vit_b, vit_l, vit_h or auto (detect from the checkpoint)")
      ->check(CLI::IsMember({"vit_b", "vit_l", "vit_h", "auto"}));
  app.add_option("-i,--input", a.job.input, "an image or a folder of images")->required();
  app.add_option("-o,--output", a.job.output_dir, "output folder")->required();
  app.add_option("--format", a.format,
                 "label-png (official), grouped-npz (official), exclusive-npz, coco-json")
      ->check(CLI::IsMember({"label-png", "grouped-npz", "exclusive-npz", "coco-json"}));
  app.add_option("--exclusive-order", a.exclusive_order,
                 "exclusive-npz priority: generator or smallest-first")
      ->check(CLI::IsMember({"generator", "smallest-first"}));
  app.add_option("--source", a.src.type,
                 "sam, superpixels (SLIC, no weights; demos and tests only) or files "
                 "(precomputed masks in --masks-folder)")
      ->check(CLI::IsMember(masks::mask_source_types()));
  app.add_option("-d,--device", a.device, "cpu, cuda or cuda:N");
  app.add_flag("--half", a.half, "run SAM in float16 on CUDA");
  app.add_option("--precision", a.src.precision,
                 "SAM compute precision: fp32 (default, exact) or bf16 (CUDA, or a CPU with "
                 "AVX512-BF16 / AMX-BF16)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--rgb", a.src.rgb, "give SAM RGB images (the official script passes OpenCV's BGR)");
  app.add_flag("--save-embeddings", a.save_embeddings,
               "also write <name>_embedding.npy (1, 256, 64, 64)");
  samdeblur::cli::add_field_flags(app, a.src.generator, "", {}, "Generator (sam)");
  samdeblur::cli::add_field_flags(app, a.src.superpixels, "superpixel-",
                                  {{"region_size", "superpixel-size"}}, "Superpixels");
  samdeblur::cli::add_field_flags(app, a.src.files, "masks-", {}, "Files");
  app.add_option("--threads", a.threads, "intra-op CPU threads (default 0: torch's choice)")
      ->check(CLI::Range(0, 4096));
  app.add_flag("-q,--quiet", a.quiet, "no progress bar; log warnings and errors only");
}

void require_sam_checkpoint(const masks::MaskSourceOptions& src) {
  if (src.type != "sam" || !src.checkpoint.empty()) return;
  throw samdeblur::Error(
      "--checkpoint is required with --source sam. Download an official SAM checkpoint, e.g.\n"
      "  vit_h: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth "
      "(SAM-Deblur's choice)\n"
      "  vit_l: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth\n"
      "  vit_b: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth\n"
      "or use --source superpixels for a weight-free demo.");
}

masks::MaskSourceContext source_context(const MasksArgs& a) {
  masks::MaskSourceContext context;
  context.device = torch::Device(a.device);
  context.half = a.half;
  context.keep_embedding = a.save_embeddings;
  context.output_mode = a.job.format == masks::MaskFileFormat::coco_json
                            ? sam::OutputMode::coco_rle
                            : sam::OutputMode::uncompressed_rle;
  return context;
}

void log_summary(const masks::MaskJobSummary& s) {
  const double n = std::max<int64_t>(s.processed, 1);
  slog::info(fmt::format(
      "{} images processed ({} of them replacing an incomplete output), {} skipped, {} masks, "
      "{:.1f}s; per image: encoder {:.3f}s decoder {:.3f}s post {:.3f}s",
      s.processed, s.redone, s.skipped, s.masks, s.seconds, s.times.encoder / n,
      s.times.decoder / n, s.times.post / n));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sdb-masks: Segment Anything masks (SAM-Deblur label maps / grouped masks)"};
  MasksArgs a;
  add_flags(app, a);
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  samdeblur::apply_quiet(a.quiet);
  return samdeblur::run_guarded([&]() -> int {
    samdeblur::set_cpu_threads(a.threads);
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    slog::info(fmt::format("LibTorch {}, {} intra-op threads, device {}", TORCH_VERSION,
                           torch::get_num_threads(), a.device));
    a.job.format = masks::mask_file_format_from_name(a.format);
    a.job.exclusive_order = a.exclusive_order == "generator"
                                ? masks::ExclusiveOrder::generator
                                : masks::ExclusiveOrder::smallest_first;
    a.job.save_embeddings = a.save_embeddings;
    a.job.progress = !a.quiet;
    require_sam_checkpoint(a.src);
    auto mask_source = masks::make_mask_source(a.src, source_context(a));
    slog::info("mask source: " + mask_source->describe());
    log_summary(masks::run_mask_job(a.job, *mask_source));
    return 0;
  });
}
