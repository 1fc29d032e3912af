// YAML -> JSON (config/yaml_to_json.h).
#include "samdeblur/config/yaml_to_json.h"

#include <cstdint>
#include <string>

namespace samdeblur::config {

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(yaml_to_json(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return obj;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (node.Tag() != "!") {  // unquoted: try bool / int / float like YAML 1.1 would
        bool b;
        if (YAML::convert<bool>::decode(node, b) && text != "y" && text != "n") return b;
        int64_t i;
        if (YAML::convert<int64_t>::decode(node, i)) return i;
        double d;
        if (YAML::convert<double>::decode(node, d)) return d;
      }
      return text;
    }
  }
  return nullptr;
}

}  // namespace samdeblur::config
