#include "samdeblur/metrics/mcr.h"

namespace samdeblur::metrics {

bool is_collapsed(double psnr_input, double psnr_output, double threshold_db) {
  return psnr_input - psnr_output > threshold_db;  // false for NaN differences
}

}  // namespace samdeblur::metrics
