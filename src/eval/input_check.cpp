#include "samdeblur/eval/input_check.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <string>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/io/image.h"

namespace samdeblur::eval {

void check_inputs(const std::vector<dataset::DatasetOptions>& datasets) {
  std::vector<std::string> damaged;
  std::size_t files = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& ds : datasets) {
    const bool mask_images = ds.masks_from_folder() && !ds.grouped_masks();
    for (const auto& s : dataset::list_samples(ds)) {
      std::vector<const std::string*> paths = {&s.lq, &s.gt};
      if (mask_images) paths.push_back(&s.mask);
      for (const std::string* path : paths) {
        ++files;
        try {
          io::check_image_file(*path);
        } catch (const Error& e) {
          damaged.push_back(e.what());
        }
      }
    }
  }
  if (!damaged.empty())
    throw Error(fmt::format("{} of the {} input files cannot be used, nothing was written:\n  {}",
                            damaged.size(), files, fmt::join(damaged, "\n  ")));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(fmt::format("checked {} input files: complete ({:.2f}s)", files, seconds));
}

}  // namespace samdeblur::eval
