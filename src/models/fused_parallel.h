#pragma once
// parallel_for for the hand-written kernels of models/fused*.cpp (private header).
//
// ATen's OpenMP backend (Debian's LibTorch, AT_PARALLEL_OPENMP) implements
// at::parallel_for as a header template around `#pragma omp parallel`, which takes
// effect only in code compiled with -fopenmp. The library is not (it would change
// every object's flags), so at::parallel_for ran our kernels on one thread whatever
// the intra-op thread count: measured with 2 threads, 1 of 2 chunks ever started.
// This parallel_for runs the same contiguous chunks on LibTorch's own OpenMP team
// through libgomp's entry point GOMP_parallel (what `#pragma omp parallel`
// compiles to; libtorch_cpu loads libgomp), looked up at run time like the CUDA
// entry points of core/device.cpp. Where it is absent (another OpenMP runtime, a
// native-backend LibTorch) or the code is built with -fopenmp, it is
// at::parallel_for. Callers' results must not depend on the chunking (ours index
// their partial results by item, not by thread), and `f` must not throw.
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>

namespace samdeblur::models::detail {

struct OmpEntryPoints {
  using Parallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
  using Query = int (*)();
  Parallel parallel = nullptr;  // GOMP_parallel(fn, data, num_threads, flags)
  Query thread_num = nullptr, num_threads = nullptr, in_parallel = nullptr;

  static const OmpEntryPoints& get() {
    static const OmpEntryPoints entry = [] {
      OmpEntryPoints e;
      e.parallel = reinterpret_cast<Parallel>(dlsym(RTLD_DEFAULT, "GOMP_parallel"));
      e.thread_num = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_get_thread_num"));
      e.num_threads = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_get_num_threads"));
      e.in_parallel = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "omp_in_parallel"));
      if (!e.thread_num || !e.num_threads || !e.in_parallel) e.parallel = nullptr;
      return e;
    }();
    return entry;
  }
};

// f(chunk_begin, chunk_end) over [begin, end) in at most at::get_num_threads()
// contiguous chunks of at least `grain` items (as at::parallel_for).
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (begin >= end) return;
#if defined(_OPENMP) || !AT_PARALLEL_OPENMP
  at::parallel_for(begin, end, grain, f);
#else
  const auto& omp = OmpEntryPoints::get();
  const int64_t items = end - begin, per = std::max<int64_t>(grain, 1);
  const int64_t chunks = std::min<int64_t>(at::get_num_threads(), (items + per - 1) / per);
  if (!omp.parallel || chunks <= 1 || omp.in_parallel()) {
    f(begin, end);
    return;
  }
  struct Job {
    const F* f;
    int64_t begin, end;
    const OmpEntryPoints* omp;
  } job{&f, begin, end, &omp};
  omp.parallel(
      [](void* data) {
        const auto& j = *static_cast<const Job*>(data);
        const int64_t team = j.omp->num_threads(), tid = j.omp->thread_num();
        const int64_t size = (j.end - j.begin + team - 1) / team, b = j.begin + tid * size;
        if (b < j.end) (*j.f)(b, std::min(j.end, b + size));
      },
      &job, static_cast<unsigned>(chunks), 0);
#endif
}

}  // namespace samdeblur::models::detail
