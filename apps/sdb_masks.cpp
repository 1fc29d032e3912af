// sdb-masks: SAM masks for SAM-Deblur (scripts/data_preparation/1_create_masks_with_sam.py
// and 2_masks_to_grouped_masks.py in one step). Thin wrapper over samdeblur::sam.
#include <fmt/format.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "samdeblur/core/app.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/sam/mask_files.h"
#include "samdeblur/sam/mask_generator.h"

namespace sam = samdeblur::sam;
namespace slog = samdeblur::log;

int main(int argc, char** argv) {
  CLI::App app{"sdb-masks: Segment Anything masks (SAM-Deblur label maps / grouped masks)"};
  std::string checkpoint, model_type = "auto", input, output, format = "label-png", device = "cpu";
  std::string source = "sam", exclusive_order = "generator";
  bool save_embeddings = false, rgb = false, quiet = false, half = false;
  int threads = 0;
  sam::MaskGeneratorOptions g;
  int64_t points_per_side = *g.points_per_side;
  sam::SuperpixelOptions sp;
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
      ->check(CLI::IsMember({"sam", "superpixels"}));
  app.add_option("--superpixel-size", sp.region_size, "superpixel region size in pixels");
  app.add_option("-d,--device", device, "cpu, cuda or cuda:N");
  app.add_flag("--half", half, "run SAM in float16 on CUDA");
  app.add_flag("--rgb", rgb, "give SAM RGB images (the official script passes OpenCV's BGR)");
  app.add_flag("--save-embeddings", save_embeddings,
               "also write <name>_embedding.npy (1, 256, 64, 64)");
  app.add_option("--points-per-side", points_per_side, "prompt grid per side")
      ->capture_default_str();
  app.add_option("--points-per-batch", g.points_per_batch, "prompts per decoder batch")
      ->capture_default_str();
  app.add_option("--pred-iou-thresh", g.pred_iou_thresh)->capture_default_str();
  app.add_option("--stability-score-thresh", g.stability_score_thresh)->capture_default_str();
  app.add_option("--stability-score-offset", g.stability_score_offset)->capture_default_str();
  app.add_option("--box-nms-thresh", g.box_nms_thresh)->capture_default_str();
  app.add_option("--crop-n-layers", g.crop_n_layers)->capture_default_str();
  app.add_option("--crop-nms-thresh", g.crop_nms_thresh)->capture_default_str();
  app.add_option("--crop-overlap-ratio", g.crop_overlap_ratio)->capture_default_str();
  app.add_option("--crop-n-points-downscale-factor", g.crop_n_points_downscale_factor)
      ->capture_default_str();
  app.add_option("--min-mask-region-area", g.min_mask_region_area)->capture_default_str();
  app.add_option("--threads", threads, "intra-op CPU threads (default: torch's choice)");
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  CLI11_PARSE(app, argc, argv);

  slog::setup_logging(slog::Level::info);
  return samdeblur::run_guarded([&]() -> int {
    if (threads > 0) torch::set_num_threads(threads);
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    slog::info(fmt::format("LibTorch {}, {} intra-op threads, device {}", TORCH_VERSION,
                           torch::get_num_threads(), device));
    sam::MaskJobOptions job;
    job.input = input;
    job.output_dir = output;
    job.format = sam::mask_file_format_from_name(format);
    job.exclusive_order = exclusive_order == "generator" ? sam::ExclusiveOrder::generator
                                                         : sam::ExclusiveOrder::smallest_first;
    job.save_embeddings = save_embeddings;
    job.progress = !quiet;
    g.points_per_side = points_per_side;
    g.output_mode = job.format == sam::MaskFileFormat::coco_json
                        ? sam::OutputMode::coco_rle
                        : sam::OutputMode::uncompressed_rle;
    sam::MaskJobSummary summary;
    if (source == "superpixels") {
      slog::info(fmt::format("mask source: SLIC superpixels (region {} px), NOT Segment Anything",
                             sp.region_size));
      summary = sam::run_mask_job(job, sam::make_superpixel_source(sp, g.output_mode));
    } else {
      if (checkpoint.empty())
        throw samdeblur::Error(
            "--checkpoint is required with --source sam. Download an official SAM checkpoint, "
            "e.g.\n"
            "  vit_h: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth "
            "(SAM-Deblur's choice)\n"
            "  vit_l: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth\n"
            "  vit_b: https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth\n"
            "or use --source superpixels for a weight-free demo.");
      sam::SamConfig cfg;
      if (model_type == "auto")
        cfg.model_type = "auto";
      else
        cfg = sam::SamConfig::from_name(model_type);
      auto predictor = sam::make_predictor(cfg, checkpoint, torch::Device(device), half);
      slog::info(fmt::format("SAM {} from {}; images given as {}", predictor->config().model_type,
                             checkpoint, rgb ? "RGB" : "BGR (as the official script)"));
      sam::MaskGenerator generator(*predictor, g);
      summary = sam::run_mask_job(job, sam::make_sam_source(generator, rgb, save_embeddings));
    }
    const double n = std::max<int64_t>(summary.processed, 1);
    slog::info(fmt::format(
        "{} images processed, {} skipped, {} masks, {:.1f}s; per image: encoder {:.3f}s "
        "decoder {:.3f}s post {:.3f}s",
        summary.processed, summary.skipped, summary.masks, summary.seconds,
        summary.times.encoder / n, summary.times.decoder / n, summary.times.post / n));
    return 0;
  });
}
