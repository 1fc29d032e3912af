#pragma once
// Command-line parsing shared by the apps: CLI11 errors (unknown flag, a number
// out of its range, a missing required option) exit with code 2 after CLI11's
// message, --help with 0. Numeric flags declare their valid range with
// ->check(CLI::Range(lo, hi)), so no invalid number runs as if valid.
#include <CLI/CLI.hpp>

namespace samdeblur {

// Returns -1 when the app should go on, otherwise the exit code to return.
inline int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

}  // namespace samdeblur
