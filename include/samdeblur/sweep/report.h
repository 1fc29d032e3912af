#pragma once
// report.html of a sweep: ONE self-contained file (inline CSS and SVG, images
// as base64 JPEG data URIs, no script, no external request) holding
//  - the table (table.h; <table id="results">), the reference's source;
//  - per dataset, the paired bootstrap comparisons (bootstrap.h) and the
//    images that collapse (MCR) under each variant;
//  - per dataset, an inline-SVG histogram of the per-image PSNR gain over the
//    blurry input (PSNR(output, gt) - PSNR(input, gt)) for each variant;
//  - per dataset, the worst mode-collapse cases: the images with the largest
//    PSNR drop below the input under any variant, as side-by-side crops
//    (blurry input, each variant's output, ground truth, mask overlay when the
//    dataset has masks) with their PSNRs. The crop (at most `crop` px square)
//    is the window where the worst variant's error is largest. Outputs are read
//    from each cell's images/<name>.png (a sweep saves every output); a missing
//    one is shown as "not saved".
// scripts/check_report.sh renders it in headless Chromium and fails on a
// console error or a missing table.
#include <string>
#include <vector>

#include "samdeblur/sweep/bootstrap.h"
#include "samdeblur/sweep/cell.h"
#include "samdeblur/sweep/table.h"

namespace samdeblur::sweep {

struct ReportOptions {
  int worst_cases = 4;    // per dataset
  int crop = 256;         // crop side in pixels
  int jpeg_quality = 85;  // of the data-URI crops
  int histogram_bins = 20;
};

// `cells` are the sweep's planned cells (plan_cells: their configs locate the
// input, ground-truth and mask files).
std::string render_report(const SweepResults& results, const std::vector<Cell>& cells,
                          const std::vector<PairedComparison>& comparisons,
                          const BootstrapOptions& bootstrap, const ReportOptions& options = {});

// Standard base64 (RFC 4648, with padding).
std::string base64(const std::vector<unsigned char>& bytes);
// &, <, >, " and ' as entities.
std::string html_escape(const std::string& text);

}  // namespace samdeblur::sweep
