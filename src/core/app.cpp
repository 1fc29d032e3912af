#include "samdeblur/core/app.h"

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"

namespace samdeblur {

void apply_quiet(bool quiet) {
  log::setup_logging(log::Level::info);
  log::set_console_level(quiet ? log::Level::warn : log::Level::info);
  ProgressBar::set_enabled(!quiet);
}

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    log::error(e.what());
  } catch (const c10::Error& e) {
    log::error(std::string("torch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    log::error(e.what());
  }
  return 1;
}

}  // namespace samdeblur
