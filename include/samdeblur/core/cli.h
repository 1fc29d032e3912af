#pragma once
// Command-line parsing shared by the apps: CLI11 errors (unknown flag, a number
// out of its range, a missing required option) exit with code 2 after CLI11's
// message, --help with 0. Numeric flags declare their valid range with
// ->check(CLI::Range(lo, hi)) (or through the field list, config/cli_fields.h), so
// no invalid number runs as if valid.
#include <CLI/CLI.hpp>

#include <optional>

#include "samdeblur/core/blas.h"

namespace samdeblur::cli {

// nullopt when the app should go on, otherwise the exit code to return
// (0 after --help, 2 for a usage error). First re-executes the program with fast
// BLAS kernels where OpenBLAS chose generic ones (core/blas.h).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  reexec_with_fast_blas_kernel(argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace samdeblur::cli
