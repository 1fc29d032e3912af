// sdb-masks: SAM masks for SAM-Deblur (scripts/data_preparation/1_create_masks_with_sam.py
// and 2_masks_to_grouped_masks.py in one step). Thin wrapper over samdeblur::masks; the
// generator and superpixel flags are derived from the declared option fields.
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/app.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/masks/job.h"
#include "samdeblur/masks/source.h"

namespace masks = samdeblur::masks;
namespace sam = samdeblur::sam;
namespace slog = samdeblur::log;

int main(int argc, char** argv) {
  CLI::App app{"sdb-masks: Segment Anything masks (SAM-Deblur label maps / grouped masks)"};
  std::string checkpoint, model_type = "auto", input, output, format = "label-png", device = "cpu";
  std::string source = "sam", exclusive_order = "generator";
  bool save_embeddings = false, rgb = false, quiet = false, half = false;
  int threads = 0;
  masks::MaskSourceOptions src;
  app.add_option("--checkpoint", checkpoint, "official SAM checkpoint (sam_vit_b_01ec64.pth, ...)");
  app.add_option("--model-type", model_type,
                 "vit_b, vit_l, vit_h or auto (detect from the checkpoint)")
      ->check(CLI::IsMember({"vit_b", "vit_l", "vit_h", "auto"}));
  app.add_option("-i,--input", input, "an image or a folder of images")->required();
  app.add_option("-o,--output", output, "output folder")->required();
  app.add_option("--format", format,
                 "label-png (official), grouped-npz (official), exclusive-npz, coco-json")
      ->check(CLI::IsMember({"label-png", "grouped-npz", "exclusive-npz", "coco-json"}));
  app.add_option("--exclusive-order", exclusive_order,
                 "exclusive-npz priority: generator or smallest-first")
      ->check(CLI::IsMember({"generator", "smallest-first"}));
  app.add_option("--source", source, "sam, or superpixels (SLIC, no weights; demos and tests only)")
      ->check(CLI::IsMember(masks::mask_source_types()));
  app.add_option("-d,--device", device, "cpu, cuda or cuda:N");
  app.add_flag("--half", half, "run SAM in float16 on CUDA");
  app.add_flag("--rgb", rgb, "give SAM RGB images (the official script passes OpenCV's BGR)");
  app.add_flag("--save-embeddings", save_embeddings,
               "also write <name>_embedding.npy (1, 256, 64, 64)");
  samdeblur::cli::add_field_flags(app, src.generator, "", {}, "Generator (sam)");
  samdeblur::cli::add_field_flags(app, src.superpixels, "superpixel-",
                                  {{"region_size", "superpixel-size"}}, "Superpixels");
  app.add_option("--threads", threads, "intra-op CPU threads (default 0: torch's choice)")
      ->check(CLI::Range(0, 4096));
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  if (const auto code = samdeblur::cli::parse_command_line(app, argc, argv)) return *code;

  slog::setup_logging(slog::Level::info);
  return samdeblur::run_guarded([&]() -> int {
    if (threads > 0) torch::set_num_threads(threads);
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    slog::info(fmt::format("LibTorch {}, {} intra-op threads, device {}", TORCH_VERSION,
                           torch::get_num_threads(), device));
    masks::MaskJobOptions job;
    job.input = input;
    job.output_dir = output;
    job.format = masks::mask_file_format_from_name(format);
    job.exclusive_order = exclusive_order == "generator" ? masks::ExclusiveOrder::generator
                                                         : masks::ExclusiveOrder::smallest_first;
    job.save_embeddings = save_embeddings;
    job.progress = !quiet;
    src.type = source;
    src.checkpoint = checkpoint;
    src.model_type = model_type;
    src.rgb = rgb;
    if (source == "sam" && checkpoint.empty())
      throw samdeblur::Error(
          "--checkpoint is required with --source sam. Download an official SAM checkpoint, "
          "e.g.\n"
          "  vit_h: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth "
          "(SAM-Deblur's choice)\n"
          "  vit_l: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth\n"
          "  vit_b: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth\n"
          "or use --source superpixels for a weight-free demo.");
    masks::MaskSourceContext context;
    context.device = torch::Device(device);
    context.half = half;
    context.keep_embedding = save_embeddings;
    context.output_mode = job.format == masks::MaskFileFormat::coco_json
                              ? sam::OutputMode::coco_rle
                              : sam::OutputMode::uncompressed_rle;
    auto mask_source = masks::make_mask_source(src, context);
    slog::info("mask source: " + mask_source->describe());
    const masks::MaskJobSummary summary = masks::run_mask_job(job, *mask_source);
    const double n = std::max<int64_t>(summary.processed, 1);
    slog::info(fmt::format(
        "{} images processed ({} of them replacing an incomplete output), {} skipped, {} masks, "
        "{:.1f}s; per image: encoder {:.3f}s decoder {:.3f}s post {:.3f}s",
        summary.processed, summary.redone, summary.skipped, summary.masks, summary.seconds,
        summary.times.encoder / n, summary.times.decoder / n, summary.times.post / n));
    return 0;
  });
}
