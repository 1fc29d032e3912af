#pragma once
// Per-operator CPU profile of a piece of code, shared by sdb-bench (train/bench.cpp) and
// sdb-sam-bench (sam/bench.cpp). Header-only: LibTorch's legacy profiler.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace samdeblur {

// Wall time of `fn` per top-level operator called from this thread (ATen ops and
// RECORD_FUNCTION scopes), nested calls counted in their caller: {name -> (ms, calls)}.
inline std::map<std::string, std::pair<double, int>> profile_top_level(
    const std::function<void()>& fn) {
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(
      torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
  fn();
  const auto lists = prof::disableProfilerLegacy();
  std::map<std::string, std::pair<double, int>> ops;
  for (const auto& events : lists) {
    std::vector<const prof::LegacyEvent*> open;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        open.push_back(&e);
      } else if (e.kind() == prof::EventKind::PopRange && !open.empty()) {
        const auto* start = open.back();
        open.pop_back();
        if (!open.empty()) continue;
        auto& op = ops[start->name()];
        op.first += start->cpuElapsedUs(e) / 1000.0;
        ++op.second;
      }
    }
  }
  return ops;
}

// The same entries, most expensive first.
inline std::vector<std::pair<std::string, std::pair<double, int>>> sorted_profile(
    const std::map<std::string, std::pair<double, int>>& ops) {
  std::vector<std::pair<std::string, std::pair<double, int>>> sorted(ops.begin(), ops.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  return sorted;
}

}  // namespace samdeblur
