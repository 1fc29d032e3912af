// libFuzzer target: the YAML config reader (src/config/yaml_reader.cpp). A document that is
// accepted is also dumped, which expands every alias: the node bound must hold there.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const YAML::Node root = samdeblur::config::load_yaml_text(text, "fuzz.yml");
    const std::string dumped = YAML::Dump(root);
    (void)dumped;
  } catch (const samdeblur::Error&) {
  } catch (const YAML::Exception&) {
    // yaml-cpp reports some malformed input (e.g. an unknown alias) as a plain
    // YAML::Exception, which load_yaml_text does not rewrap.
  }
  return 0;
}
