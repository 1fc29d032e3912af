// libFuzzer target: the restricted unpickler (src/io/pickle.cpp) on arbitrary bytes.
// Storages requested through persistent ids are small zero buffers.
#include <cstddef>
#include <cstdint>

#include "../../src/io/pickle.h"
#include "samdeblur/core/error.h"

namespace sid = samdeblur::io::detail;  // torch also declares a ::PyObject

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto persistent_load = [](sid::PyObject* pid,
                            const std::function<sid::PyObject*()>& make) -> sid::PyObject* {
    if (pid->kind != sid::PyObject::Kind::Tuple || pid->items.size() < 5 ||
        pid->items[4]->kind != sid::PyObject::Kind::Int || pid->items[4]->i < 0 ||
        pid->items[4]->i > 4096)
      throw samdeblur::Error("fuzz: unsupported persistent id");
    sid::PyObject* s = make();
    s->dtype = torch::kFloat32;
    s->tensor = torch::zeros({pid->items[4]->i * 4}, torch::kUInt8);
    return s;
  };
  samdeblur::io::detail::UnpickleLimits limits;
  limits.max_objects = size_t{1} << 16;
  limits.max_stack = size_t{1} << 14;
  limits.max_memo = size_t{1} << 14;
  try {
    samdeblur::io::detail::unpickle(data, size, "fuzz.pkl", persistent_load, limits);
  } catch (const samdeblur::Error&) {
  }
  return 0;
}
