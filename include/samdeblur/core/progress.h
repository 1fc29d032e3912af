#pragma once
// A progress bar on stderr with count, rate and ETA. On a terminal it redraws
// one line (at most 10 times a second); otherwise it prints a plain line every
// `log_every_s` seconds so CI logs stay readable.
#include <chrono>
#include <cstdint>
#include <string>

namespace samdeblur {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "img",
              double log_every_s = 10.0);
  ~ProgressBar();
  // Advances by n and sets a short status text shown after the bar.
  void update(int64_t n = 1, const std::string& status = "");
  void finish();
  // Process-wide switch set by the apps' -q/--quiet: when false, no bar draws
  // anything (not even its 0 % line). Default true.
  static void set_enabled(bool enabled);
  static bool enabled();
  // Formats seconds as H:MM:SS or M:SS.
  static std::string format_duration(double seconds);

 private:
  void draw(bool force);
  std::string label_, unit_, status_;
  int64_t total_ = 0, done_ = 0;
  double log_every_s_;
  bool tty_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace samdeblur
