#pragma once
// Shared head and tail of every executable in apps/: the console setup after the
// command line is parsed, and a guard that turns any escaping exception into a
// logged error and exit code 1, so that no error path exits 0 and none aborts with
// an uncaught exception.
#include <functional>

namespace samdeblur {

// Console logging for an app: info and above on stderr, or, with quiet (-q /
// --quiet), warnings and errors only and no progress bar, so that the app's stdout
// result lines and its errors are all a quiet run prints. Call once after parsing
// the command line (a later log::setup_logging with a log file keeps the console
// level).
void apply_quiet(bool quiet);

// Returns body()'s exit code, or 1 after logging samdeblur::Error, c10::Error
// (without its backtrace) or any other std::exception.
int run_guarded(const std::function<int()>& body);

}  // namespace samdeblur
