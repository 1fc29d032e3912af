#include "samdeblur/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace samdeblur {
namespace {
std::atomic<bool> g_enabled{true};
}  // namespace

void ProgressBar::set_enabled(bool enabled) { g_enabled = enabled; }
bool ProgressBar::enabled() { return g_enabled; }

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, double log_every_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), log_every_s_(log_every_s) {
  tty_ = ::isatty(STDERR_FILENO) != 0;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::hours(1);
  draw(true);
}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

void ProgressBar::update(int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  draw(done_ >= total_);
}

void ProgressBar::draw(bool force) {
  if (!g_enabled) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since_draw < (tty_ ? 0.1 : log_every_s_)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1.0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 28;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  const std::string rate_text = rate >= 1.0 || rate == 0.0
                                    ? fmt::format("{:.2f} {}/s", rate, unit_)
                                    : fmt::format("{:.2f} s/{}", 1.0 / rate, unit_);
  const std::string line =
      fmt::format("{} [{}] {}/{} {:3.0f}% | {} | elapsed {} | ETA {}{}{}", label_, bar, done_,
                  total_, frac * 100.0, rate_text, format_duration(elapsed), format_duration(eta),
                  status_.empty() ? "" : " | ", status_);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (done_ < total_) draw(true);
  if (tty_ && g_enabled) std::fprintf(stderr, "\n");
}

}  // namespace samdeblur
