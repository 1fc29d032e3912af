#pragma once
// Logging facade. The library logs through these functions only; spdlog stays
// an implementation detail (src/core/log.cpp). Apps call setup_logging() once.
#include <string>

namespace samdeblur::log {

enum class Level { debug, info, warn, error };

// Console sink on stderr plus, when file is non-empty, a file sink.
void setup_logging(Level level, const std::string& file = "");
// Lowest level the console (stderr) sink shows, independently of the file sink:
// apps' -q / --quiet sets Level::warn (warnings and errors only).
void set_console_level(Level level);
void debug(const std::string& msg);
void info(const std::string& msg);
void warn(const std::string& msg);
void error(const std::string& msg);

}  // namespace samdeblur::log
