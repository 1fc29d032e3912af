#pragma once
// The sweep's results table in the paper's layout (SAM-Deblur Table 1): one row
// per variant in sweep order; per dataset PSNR and SSIM, plus MCR unless the
// reference gives this dataset's numbers without MCR (the paper shows none for
// GoPro, the training set); the best value of each column in bold (highest
// PSNR / SSIM, lowest MCR, compared as displayed). With a reference, a cell
// reads "ours (published, ours - published)".
//
// Files (all written by the runner, atomically):
//   table.md    the table above, in Markdown;
//   table.csv   variant,dataset,psnr,ssim,mcr,count,psnr_input (mcr a fraction, as
//               summary.json; numbers in shortest round-trip form, so they equal the
//               cells' summary.json exactly), plus ref_psnr,ref_ssim,ref_mcr,
//               delta_psnr,delta_ssim,delta_mcr with a reference (empty when absent);
//   table.json  the same cells with their collapsed images, the reference and the
//               paired bootstrap comparisons (bootstrap.h).
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "samdeblur/sweep/bootstrap.h"
#include "samdeblur/sweep/cell.h"
#include "samdeblur/sweep/sweep_config.h"

namespace samdeblur::sweep {

// Every cell's results, indexed [dataset][variant].
struct SweepResults {
  const SweepConfig* config = nullptr;
  std::vector<std::vector<CellResult>> cells;
  const CellResult& at(std::size_t dataset, std::size_t variant) const {
    return cells.at(dataset).at(variant);
  }
};

struct TableColumn {
  std::size_t dataset = 0;
  std::string metric;  // psnr | ssim | mcr
};

struct TableCell {
  std::string ours;       // formatted value (MCR in %)
  std::string reference;  // "(published, delta)" or ""
  bool best = false;
};

struct Table {
  std::vector<std::string> datasets;  // names
  std::vector<TableColumn> columns;
  std::vector<std::string> rows;              // variant names
  std::vector<std::vector<TableCell>> cells;  // [row][column]
  std::string reference_source;               // "" without a reference
};

Table build_table(const SweepResults& results);
// Column header: "GoPro PSNR↑".
std::string column_title(const Table& table, const TableColumn& column);

std::string table_markdown(const Table& table, const std::string& title);
std::string table_csv(const SweepResults& results);

// Every pair of variants (a before b in sweep order) on every dataset.
std::vector<PairedComparison> all_comparisons(const SweepResults& results,
                                              const BootstrapOptions& options);
nlohmann::json table_json(const SweepResults& results,
                          const std::vector<PairedComparison>& comparisons,
                          const BootstrapOptions& options);

}  // namespace samdeblur::sweep
