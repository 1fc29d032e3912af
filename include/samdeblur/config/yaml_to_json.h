#pragma once
// A YAML tree as JSON (the resolved config in summary.json).
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

namespace samdeblur::config {

// Maps become objects, sequences arrays, null null; an unquoted scalar becomes a
// bool / integer / float when it parses as one (as YAML 1.1 would, except 'y'
// and 'n'), every other scalar a string.
nlohmann::json yaml_to_json(const YAML::Node& node);

}  // namespace samdeblur::config
