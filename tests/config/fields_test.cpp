// The generic field list (config/fields.h) on a toy option struct.
#include "samdeblur/config/fields.h"

#include <gtest/gtest.h>

#include "samdeblur/core/error.h"
#include "support/test_support.h"

using namespace samdeblur;
using config::Field;

namespace {

struct Toy {
  int64_t count = 3;
  double ratio = 0.5;
  float scale = 1.5f;
  std::optional<int64_t> side = 32;
  std::string label = "x";
  bool flag = false;

  template <class Self, class V>
  static void fields(Self& self, V&& visit) {
    visit(Field{"count", "how many"}.at_least(1), self.count);
    visit(Field{"ratio", "a fraction"}.at_least(0).below(1), self.ratio);
    visit(Field{"scale", "positive"}.above(0), self.scale);
    visit(Field{"side", "optional"}.at_least(1).at_most(64), self.side);
    visit(Field{"label", "text"}, self.label);
    visit(Field{"flag", "yes/no"}, self.flag);
  }
};

Toy read(const std::string& yaml) {
  Toy t;
  config::Section s(YAML::Load(yaml), "toy", "toy.yml");
  config::read_fields(s, t);
  s.finish(nullptr);
  return t;
}

// The message of the ConfigError reading `yaml` throws.
std::string config_error(const std::string& yaml) {
  return test::error_of<ConfigError>([&] { read(yaml); });
}

}  // namespace

TEST(Fields, RangesAndTheirText) {
  const Field a{"a", ""};
  EXPECT_EQ(a.at_least(1).range_text(), ">= 1");
  EXPECT_EQ(a.above(0).range_text(), "> 0");
  EXPECT_EQ(a.at_least(0).below(1).range_text(), "in [0, 1)");
  EXPECT_EQ(a.range_text(), "");
  EXPECT_TRUE(a.at_least(0).below(1).in_range(0));
  EXPECT_FALSE(a.at_least(0).below(1).in_range(1));
  EXPECT_FALSE(a.above(0).in_range(0));
}

TEST(Fields, NamesTextAndVisitOrder) {
  EXPECT_EQ(config::field_names<Toy>(),
            (std::vector<std::string>{"count", "ratio", "scale", "side", "label", "flag"}));
  Toy t;
  EXPECT_EQ(
      config::fields_text(t, "toy"),
      "toy.count=3\ntoy.ratio=0.5\ntoy.scale=1.5\ntoy.side=32\ntoy.label=x\ntoy.flag=false\n");
  t.side.reset();
  t.ratio = 0.1;  // shortest round-trip form
  EXPECT_NE(config::fields_text(t, "toy").find("toy.ratio=0.1\ntoy.scale=1.5\ntoy.side=none\n"),
            std::string::npos);
}

TEST(Fields, ReadFromYamlIsTypedStrictAndRangeChecked) {
  const Toy t = read("count: 7\nratio: 0.25\nscale: 2\nside: null\nlabel: hi\nflag: true\n");
  EXPECT_EQ(t.count, 7);
  EXPECT_DOUBLE_EQ(t.ratio, 0.25);
  EXPECT_FLOAT_EQ(t.scale, 2.0f);
  EXPECT_FALSE(t.side.has_value());
  EXPECT_EQ(t.label, "hi");
  EXPECT_TRUE(t.flag);
  const Toy d = read("{}");  // absent keys keep their defaults
  EXPECT_EQ(config::fields_text(d, "t"), config::fields_text(Toy{}, "t"));
  EXPECT_NE(config_error("count: 0\n").find("toy.yml: toy.count: must be >= 1, got 0"),
            std::string::npos)
      << config_error("count: 0\n");
  EXPECT_NE(config_error("ratio: 1\n").find("toy.ratio: must be in [0, 1)"), std::string::npos);
  EXPECT_NE(config_error("side: 65\n").find("toy.side"), std::string::npos);
  EXPECT_NE(config_error("count: many\n").find("toy.count"), std::string::npos);
  EXPECT_NE(config_error("cuont: 2\n").find("did you mean"), std::string::npos);
  Toy bad;
  bad.scale = 0;
  EXPECT_EQ(test::error_of<ConfigError>([&] { config::check_fields(bad); }),
            "scale: must be > 0, got 0");
}
