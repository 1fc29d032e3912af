#pragma once
// SAM-Deblur's Mode Collapse Rate (README of HPLQAQ/SAM-Deblur): an image
// "collapses" when PSNR(blurred input, gt) - PSNR(deblurred output, gt) > 3 dB.
// The per-dataset rate is eval::DatasetAccumulator::mcr() (eval/sample_metrics.h).

namespace samdeblur::metrics {

// psnr_input - psnr_output > threshold_db. IEEE semantics with infinite
// PSNRs: input inf and output finite -> collapsed; output inf -> not; both
// inf (inf - inf = NaN) -> not collapsed; any NaN -> not collapsed.
bool is_collapsed(double psnr_input, double psnr_output, double threshold_db = 3.0);

}  // namespace samdeblur::metrics
