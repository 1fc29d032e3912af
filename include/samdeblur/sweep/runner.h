#pragma once
// sdb-sweep's work: plan every cell (cell.h), check all of them before the first
// runs (configs, folders, checkpoints), evaluate each unfinished cell through
// eval::run_evaluation (the function sdb-eval runs), skip finished ones, then
// write table.md, table.csv, table.json (table.h) and report.html (report.h)
// into the output folder, each atomically. A cell that fails is logged and the
// others still run; the sweep then throws an Error listing the failed cells
// (and writes no table), so a rerun continues with them.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "samdeblur/sweep/bootstrap.h"
#include "samdeblur/sweep/report.h"
#include "samdeblur/sweep/sweep_config.h"
#include "samdeblur/sweep/table.h"

namespace samdeblur::sweep {

struct CellStatus {
  std::size_t index = 0, total = 0;  // 1-based position, number of cells
  const Cell* cell = nullptr;
  bool skipped = false;  // finished earlier with the same fingerprint
  double seconds = 0;    // evaluation time (0 when skipped)
};

struct SweepOptions {
  std::string output_dir;      // default results/<sweep name>
  std::string device = "cpu";  // cpu | cuda | cuda:N
  bool progress = true;        // the evaluation's progress bar
  BootstrapOptions bootstrap;
  ReportOptions report;
  // Called after each cell (computed or skipped), after its fingerprint was
  // written. Tests throw from it to interrupt a sweep.
  std::function<void(const CellStatus&)> on_cell;
};

struct SweepRun {
  std::string output_dir;
  std::size_t computed = 0, skipped = 0;
  std::vector<Cell> cells;
  SweepResults results;  // results.config points at the SweepConfig passed in
  std::vector<PairedComparison> comparisons;
};

SweepRun run_sweep(const SweepConfig& sweep, const SweepOptions& options);

// Writes table.md, table.csv, table.json and report.html of finished cells.
void write_sweep_outputs(SweepRun& run, const SweepConfig& sweep, const SweepOptions& options);

}  // namespace samdeblur::sweep
