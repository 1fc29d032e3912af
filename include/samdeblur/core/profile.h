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
// Scopes whose name starts with `expand` (when not empty) are also broken down: the operators
// directly inside them are reported as "scope > op" (the scope's own entry keeps its total).
inline std::map<std::string, std::pair<double, int>> profile_top_level(
    const std::function<void()>& fn, const std::string& expand = "") {
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
        std::string key = start->name();
        bool inside_expanded = !expand.empty();
        for (const auto* outer : open)
          inside_expanded = inside_expanded && std::string(outer->name()).rfind(expand, 0) == 0;
        if (!open.empty() && !inside_expanded) continue;
        for (auto it = open.rbegin(); it != open.rend(); ++it)
          key = std::string((*it)->name()) + " > " + key;
        auto& op = ops[key];
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
