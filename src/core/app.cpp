#include "samdeblur/core/app.h"

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"

namespace samdeblur {

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
