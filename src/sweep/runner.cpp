#include "samdeblur/sweep/runner.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <filesystem>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/eval/evaluator.h"
#include "samdeblur/masks/cache.h"

namespace samdeblur::sweep {
namespace fs = std::filesystem;

namespace {

// Everything a cell reads must exist before the first cell runs.
void check_cells(const std::vector<Cell>& cells) {
  for (const auto& cell : cells) {
    try {
      const auto& ds = cell.config.datasets.front();
      dataset::list_samples(ds);
      if (ds.needs_masks() && ds.mask_source.on_the_fly())
        masks::mask_cache_settings(ds.mask_source);  // the SAM checkpoint exists
      const std::string& ckpt = cell.config.path.pretrain_network_g;
      if (!fs::is_regular_file(ckpt)) throw FileError(ckpt, "checkpoint not found");
    } catch (const Error& e) {
      throw Error(fmt::format("cell {} x {}: {}", cell.variant_name, cell.dataset_name, e.what()));
    }
  }
}

std::string result_line(const CellResult& r) {
  return fmt::format("psnr {:.4f} | ssim {:.4f} | MCR {:.2f}% | {} images", r.psnr, r.ssim,
                     100.0 * r.mcr, r.count);
}

}  // namespace

SweepRun run_sweep(const SweepConfig& sweep, const SweepOptions& options) {
  SweepRun run;
  run.output_dir = options.output_dir.empty() ? "results/" + sweep.name : options.output_dir;
  run.cells = plan_cells(sweep, run.output_dir);
  check_cells(run.cells);
  log::info(fmt::format("sweep '{}': {} variants x {} datasets = {} cells into {}", sweep.name,
                        sweep.variants.size(), sweep.datasets.size(), run.cells.size(),
                        run.output_dir));
  std::map<std::string, std::string> checkpoint_sha;
  std::vector<std::string> failed;
  run.results.config = &sweep;
  run.results.cells.assign(sweep.datasets.size(), std::vector<CellResult>(sweep.variants.size()));
  for (std::size_t k = 0; k < run.cells.size(); ++k) {
    const Cell& cell = run.cells[k];
    const std::string where = fmt::format("[{}/{}] {} x {}", k + 1, run.cells.size(),
                                          cell.variant_name, cell.dataset_name);
    CellStatus status{k + 1, run.cells.size(), &cell, false, 0};
    try {
      const std::string fingerprint = cell_fingerprint(cell, checkpoint_sha);
      if (cell_is_finished(cell.dir, fingerprint)) {
        status.skipped = true;
        ++run.skipped;
      } else {
        eval::RunOptions eval_options;
        eval_options.output_dir = cell.dir;
        eval_options.device = options.device;
        eval_options.progress = options.progress;
        const auto t0 = std::chrono::steady_clock::now();
        eval::run_evaluation(cell.config, eval_options);
        status.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        mark_cell_finished(cell, fingerprint);
        ++run.computed;
      }
      const CellResult r = read_cell_result(cell);
      log::info(fmt::format("{}: {} | {}", where,
                            status.skipped ? std::string("up to date, skipped")
                                           : fmt::format("evaluated in {:.1f} s", status.seconds),
                            result_line(r)));
      run.results.cells[cell.dataset][cell.variant] = r;
    } catch (const Error& e) {
      log::error(fmt::format("{}: failed: {}", where, e.what()));
      failed.push_back(fmt::format("{} x {}", cell.variant_name, cell.dataset_name));
      continue;
    }
    if (options.on_cell) options.on_cell(status);
  }
  if (!failed.empty())
    throw Error(
        fmt::format("sweep '{}': {} of {} cells failed ({}); the others are saved, a rerun "
                    "continues with the failed ones",
                    sweep.name, failed.size(), run.cells.size(), fmt::join(failed, "; ")));
  write_sweep_outputs(run, sweep, options);
  return run;
}

void write_sweep_outputs(SweepRun& run, const SweepConfig& sweep, const SweepOptions& options) {
  run.results.config = &sweep;
  run.comparisons = all_comparisons(run.results, options.bootstrap);
  const Table table = build_table(run.results);
  const fs::path out(run.output_dir);
  write_file_atomic((out / "table.md").string(), table_markdown(table, sweep.name));
  write_file_atomic((out / "table.csv").string(), table_csv(run.results));
  write_file_atomic((out / "table.json").string(),
                    table_json(run.results, run.comparisons, options.bootstrap).dump(2) + "\n");
  write_file_atomic(
      (out / "report.html").string(),
      render_report(run.results, run.cells, run.comparisons, options.bootstrap, options.report));
  log::info(fmt::format("sweep '{}': {} cells evaluated, {} up to date; table and report in {}",
                        sweep.name, run.computed, run.skipped, run.output_dir));
}

}  // namespace samdeblur::sweep
