#include "samdeblur/core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace samdeblur::log {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto l = std::make_shared<spdlog::logger>("samdeblur", sink);
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return instance;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

void setup_logging(Level level, const std::string& file) {
  auto& l = logger();
  if (!file.empty()) {
    l->sinks().push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false));
    l->sinks().back()->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  }
  l->set_level(to_spdlog(level));
  l->flush_on(spdlog::level::info);
}

void set_console_level(Level level) {
  logger()->sinks().front()->set_level(to_spdlog(level));  // sinks()[0]: stderr, always present
}

void debug(const std::string& msg) { logger()->debug(msg); }
void info(const std::string& msg) { logger()->info(msg); }
void warn(const std::string& msg) { logger()->warn(msg); }
void error(const std::string& msg) { logger()->error(msg); }

}  // namespace samdeblur::log
