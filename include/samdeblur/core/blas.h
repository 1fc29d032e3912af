#pragma once
// The BLAS library under LibTorch's fp32 matrix products. Debian's LibTorch calls
// OpenBLAS (DYNAMIC_ARCH), which picks its kernels from the CPU model when it is
// loaded; a model newer than the OpenBLAS release (0.3.21 does not know Emerald or
// Granite Rapids, for example) falls back to the SSE3 "Prescott" kernels, 4-5x
// slower than the AVX-512 ones the CPU can run (README, "Benchmarks"). OpenBLAS
// reads OPENBLAS_CORETYPE only when it is loaded, before main(), so the fix is to
// start the program again with it set.
#include <string>

namespace samdeblur {

// The OpenBLAS kernel family in use ("Cooperlake", "Prescott", ...), or "" when the
// process has no OpenBLAS.
std::string blas_kernel();

// "OpenBLAS <kernel>, <n> threads" (or "OpenBLAS: not loaded"), for benchmark logs.
std::string blas_description();

// Whether `kernel` (a blas_kernel() name) is one of OpenBLAS's generic x86-64
// fallbacks ("Prescott", "Core2", "Nehalem", ...): what it runs on a CPU model it does
// not know.
bool blas_kernel_is_generic(const std::string& kernel);

// The OPENBLAS_CORETYPE matching this CPU's instruction sets ("Cooperlake" with
// AVX512-BF16, "SkylakeX" with AVX-512, "Haswell" with AVX2 + FMA), or "".
std::string blas_kernel_for_cpu();

// Called first by every app (cli::parse_command_line): when OpenBLAS fell back to a
// generic kernel that this CPU outruns, and neither OPENBLAS_CORETYPE nor
// SAMDEBLUR_KEEP_BLAS_KERNEL is set, sets OPENBLAS_CORETYPE and re-executes
// /proc/self/exe with the same arguments (nothing has run yet). Returns normally in
// every other case, including a failed exec. Programs using the library directly
// can set OPENBLAS_CORETYPE themselves.
void reexec_with_fast_blas_kernel(char** argv);

}  // namespace samdeblur
