#pragma once
// Shared tail of every executable in apps/: run the body, and turn any escaping
// exception into a logged error and exit code 1, so that no error path exits 0
// and none aborts with an uncaught exception.
#include <functional>

namespace samdeblur {

// Returns body()'s exit code, or 1 after logging samdeblur::Error, c10::Error
// (without its backtrace) or any other std::exception.
int run_guarded(const std::function<int()>& body);

}  // namespace samdeblur
