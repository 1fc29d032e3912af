// Default options of the sanitizer runtimes for SAMDEBLUR_SANITIZE / SAMDEBLUR_FUZZ builds
// (linked into every executable by CMakeLists.txt). Environment variables still override.
//
// LibTorch, OpenMP and OpenBLAS are not instrumented: their one-time allocations (thread
// pools, kernel registries, static caches) are never freed and would be reported as leaks
// at exit. The suppressions below name only those libraries, never our own code.
extern "C" {

const char* __asan_default_options() {
  return "detect_odr_violation=0:strict_string_checks=1:detect_stack_use_after_return=0";
}

const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

const char* __lsan_default_suppressions() {
  return "leak:libtorch\n"
         "leak:libc10\n"
         "leak:libgomp\n"
         "leak:libopenblas\n"
         "leak:libdnnl\n"
         "leak:libprotobuf\n"
         "leak:libgloo\n"
         "leak:libopencv\n"
         "leak:libyaml-cpp\n"
         "leak:libglib\n"
         "leak:libfontconfig\n";
}

}  // extern "C"
