#pragma once
// One cell of a sweep = one evaluation (eval::run_evaluation, exactly what
// sdb-eval runs) of a variant on a dataset, in <output>/<slug(variant)>/<slug(dataset)>/
// with the usual metrics.csv, summary.json, config.yml and images/ (every
// output is saved: the report's crops read them), plus sweep_cell.json, the
// cell's fingerprint, written after the evaluation's folder was committed.
//
// A cell is finished when sweep_cell.json holds the fingerprint the cell would
// have now: SHA-256 over a format version, the resolved cell config (YAML
// text), the checkpoint's SHA-256, the data listing (every lq / gt / mask
// file's path, size and modification time) and, for masks on the fly, the mask
// cache settings (masks/cache.h). Changing any of them reruns the cell.
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "samdeblur/eval/config.h"
#include "samdeblur/sweep/sweep_config.h"

namespace samdeblur::sweep {

inline constexpr int kCellFormatVersion = 1;
inline constexpr const char* kCellFile = "sweep_cell.json";

struct Cell {
  std::size_t variant = 0, dataset = 0;  // indices into SweepConfig
  std::string variant_name, dataset_name;
  std::string dir;          // <output>/<slug(variant)>/<slug(dataset)>
  eval::EvalConfig config;  // one dataset: the sweep's dataset applied to the variant config
};

// The evaluation config of (variant v, dataset d): the variant's test config
// with its one evaluated dataset (a config with none or several is an error)
// renamed to the sweep dataset and given its folders / mask source (a mask_source
// without cache_dir gets <output>/mask_cache/<slug(dataset)>, shared by all
// variants), path.pretrain_network_g = the checkpoint, val.save_img = true.
// Errors name the sweep file, the variant and the dataset.
eval::EvalConfig cell_config(const SweepConfig& sweep, std::size_t v, std::size_t d,
                             const std::string& output_dir);

// Every cell, dataset-major (all variants of the first dataset, then the next),
// so a dataset's mask cache is filled once and then only hit.
std::vector<Cell> plan_cells(const SweepConfig& sweep, const std::string& output_dir);

// The cell's fingerprint (hex SHA-256, see above). `checkpoint_sha` caches the
// checkpoints' hashes by path across calls.
std::string cell_fingerprint(const Cell& cell, std::map<std::string, std::string>& checkpoint_sha);

// True when <dir>/sweep_cell.json holds `fingerprint` and the results exist.
bool cell_is_finished(const std::string& dir, const std::string& fingerprint);
// Writes <dir>/sweep_cell.json (atomically).
void mark_cell_finished(const Cell& cell, const std::string& fingerprint);

// One image of a finished cell (metrics.csv).
struct ImageRow {
  std::string name;
  double psnr = 0, ssim = 0, psnr_input = 0;
  bool collapsed = false;
};

// A finished cell's results, read back from its files (so a skipped cell and a
// computed one are the same thing).
struct CellResult {
  std::string variant, dataset, dir;
  double psnr = 0, ssim = 0, mcr = 0, psnr_input = 0;  // summary.json
  int64_t count = 0;
  std::vector<ImageRow> images;  // metrics.csv, in its order
};

// Reads <cell.dir>/summary.json ("psnr", "ssim", "mcr", "psnr_input", "count";
// "inf"/"nan" strings as numbers) and metrics.csv (columns name, psnr, ssim,
// psnr_input, collapsed). FileError naming the file and the missing key or column.
CellResult read_cell_result(const Cell& cell);

// One line of a CSV file split into fields (RFC 4180 quoting, as metrics.csv writes).
std::vector<std::string> split_csv_line(const std::string& line);

}  // namespace samdeblur::sweep
