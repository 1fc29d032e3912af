// sdb-prepare: a benchmark or the GoPro training crops, from the archives as their
// authors publish them, into the layout configs/test/* and configs/train/* read
// (samdeblur::prepare; archive layouts in include/samdeblur/prepare/prepare.h).
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include <iostream>

#include "samdeblur/core/app.h"
#include "samdeblur/core/log.h"
#include "samdeblur/prepare/prepare.h"

namespace slog = samdeblur::log;
namespace prep = samdeblur::prepare;

int main(int argc, char** argv) {
  std::string help = "datasets:";
  std::vector<std::string> names;
  for (const auto& d : prep::datasets()) {
    names.push_back(d.name);
    help += fmt::format("\n  {:<12} {}", d.name, d.description);
  }
  CLI::App app{
      "sdb-prepare: a deblurring benchmark from its published archive -> "
      "<output>/<split>/{input,target}/ + manifest.json"};
  app.footer(help);
  std::string dataset;
  prep::PrepareOptions o;
  bool quiet = false;
  app.add_option("dataset", dataset, "dataset to prepare")->required()->check(CLI::IsMember(names));
  app.add_option("--source", o.source, "folder holding the unpacked archive")->required();
  app.add_option("-o,--output", o.output, "output folder (e.g. datasets/GoPro)")->required();
  app.add_option("--split", o.split, "test (default; gopro-crops: train) or train");
  app.add_option("--expect-pairs", o.expected_pairs,
                 "pairs expected (default: the published count; 0: any)");
  app.add_flag("-q,--quiet", quiet, "no progress bar; log warnings and errors only");
  CLI11_PARSE(app, argc, argv);

  samdeblur::apply_quiet(quiet);
  return samdeblur::run_guarded([&]() -> int {
    o.progress = !quiet;
    std::string cmdline;
    for (int i = 0; i < argc; ++i) cmdline += (i ? " " : "") + std::string(argv[i]);
    slog::info("command: " + cmdline);
    const auto s = prep::prepare_dataset(dataset, o);
    std::cout << fmt::format("{} {}: {} pairs verified, {} files; manifest {}", s.dataset, s.split,
                             s.pairs, s.files, s.manifest)
              << std::endl;
    return 0;
  });
}
