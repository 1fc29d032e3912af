// Hostile YAML at the config reader: duplicate keys, non-standard tags, alias bombs,
// invalid UTF-8 (README, Robustness). Each test checks the behaviour, not a file name.
#include "samdeblur/config/yaml_reader.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "samdeblur/core/error.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
namespace cfg = samdeblur::config;
using samdeblur::ConfigError;
using samdeblur::FileError;

namespace {

// Each test writes its YAML files into a fresh folder of its own.
class YamlReader : public ::testing::Test {
 protected:
  std::string write_temp(const std::string& name, const std::string& text) {
    return samdeblur::test::write_text(tmp_ / name, text);
  }
  samdeblur::test::TempDir tmp_{"yaml"};
};

// Runs `f`, expects a ConfigError whose message contains every one of `parts`.
template <typename F>
void expect_config_error(F f, const std::vector<std::string>& parts) {
  const std::string message = samdeblur::test::error_of<ConfigError>(f);
  for (const auto& p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;
}

// An alias bomb: each level repeats the previous one ten times; `levels` levels expand to
// 10^levels leaves.
std::string alias_bomb(int levels) {
  std::string s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < levels; ++i) {
    const std::string p = "*a" + std::to_string(i - 1);
    s += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + p;
    for (int k = 1; k < 10; ++k) s += ", " + p;
    s += "]\n";
  }
  return s;
}

}  // namespace

TEST_F(YamlReader, ValidConfigLoads) {
  const auto path = write_temp("ok.yml",
                               "name: test\nlr: !!float 1e-3\nlist: [1, 2]\nq: 'quoted'\n"
                               "base: &b {x: 1}\nother: *b\nutf8: \"caf\xc3\xa9 \xe2\x9c\x93\"\n");
  const YAML::Node n = cfg::load_yaml_file(path);
  EXPECT_EQ(n["name"].as<std::string>(), "test");
  EXPECT_DOUBLE_EQ(n["lr"].as<double>(), 1e-3);
  EXPECT_EQ(n["other"]["x"].as<int>(), 1);
}

TEST_F(YamlReader, DuplicateKeyIsRefusedWithBothLines) {
  const auto path = write_temp("dup.yml", "name: a\nval:\n  x: 1\n  y: 2\n  x: 3\n");
  expect_config_error([&] { cfg::load_yaml_file(path); },
                      {path + ":5:", "duplicate key 'x'", "first at line 3"});
  // The same key in different mappings is fine.
  const auto ok = write_temp("nodup.yml", "a:\n  x: 1\nb:\n  x: 2\n");
  EXPECT_NO_THROW(cfg::load_yaml_file(ok));
}

// PyYAML keeps the last value and yaml-cpp the first: a repeat is harmless only when
// both are the same scalar (the official GoPro NAFNet.yml repeats use_shuffle).
TEST_F(YamlReader, RepeatedKeyWithTheSameScalarIsAccepted) {
  const auto same =
      write_temp("same.yml", "d:\n  use_shuffle: True\n  n: 1\n  use_shuffle: true\n");
  const auto n = cfg::load_yaml_file(same);
  EXPECT_TRUE(n["d"]["use_shuffle"].as<bool>());
  EXPECT_EQ(n["d"]["n"].as<int>(), 1);
  const auto differ = write_temp("differ.yml", "d:\n  use_shuffle: true\n  use_shuffle: false\n");
  expect_config_error([&] { cfg::load_yaml_file(differ); },
                      {":3:", "duplicate key 'use_shuffle'", "line 2", "different value"});
  const auto nested = write_temp("nested.yml", "a:\n  x: 1\na:\n  x: 1\n");
  expect_config_error([&] { cfg::load_yaml_file(nested); }, {"duplicate key 'a'", "line 1"});
}

TEST_F(YamlReader, DuplicateTopLevelKeyIsRefused) {
  const auto path = write_temp("dup_top.yml", "name: a\nother: 1\nname: b\n");
  expect_config_error([&] { cfg::load_yaml_file(path); },
                      {":3:", "duplicate key 'name'", "line 1"});
}

TEST_F(YamlReader, PythonTagIsRefused) {
  const auto path =
      write_temp("tag.yml", "name: a\nx: !!python/object/apply:os.system [\"true\"]\n");
  expect_config_error([&] { cfg::load_yaml_file(path); },
                      {":2:", "!!python/object/apply:os.system"});
  const auto scalar = write_temp("tag2.yml", "name: !!python/name:os.system ''\n");
  expect_config_error([&] { cfg::load_yaml_file(scalar); }, {":1:", "not allowed"});
  const auto local = write_temp("tag3.yml", "name: !custom value\n");
  expect_config_error([&] { cfg::load_yaml_file(local); }, {"'!custom'"});
  const auto binary = write_temp("tag4.yml", "name: !!binary aGVsbG8=\n");
  expect_config_error([&] { cfg::load_yaml_file(binary); }, {"!!binary"});
}

TEST_F(YamlReader, CoreSchemaTagsAreAccepted) {
  const auto path =
      write_temp("core.yml",
                 "a: !!str 1\nb: !!int 2\nc: !!float 3\nd: !!bool true\ne: !!null ''\n"
                 "f: !!map {x: 1}\ng: !!seq [1]\nh: ! plain\n");
  EXPECT_NO_THROW(cfg::load_yaml_file(path));
}

TEST_F(YamlReader, AliasBombIsRefusedWhileReading) {
  // 10^9 nodes when expanded, in an ignored section: refused before anything walks it.
  const auto path = write_temp(
      "bomb.yml", "name: a\ndist_params:\n" + [] {
        std::string inner;
        std::istringstream lines(alias_bomb(9));
        for (std::string l; std::getline(lines, l);) inner += "  " + l + "\n";
        return inner;
      }());
  expect_config_error([&] { cfg::load_yaml_file(path); }, {"alias", "1000000"});
  // Small alias use is fine: 10^4 nodes.
  EXPECT_NO_THROW(cfg::load_yaml_file(write_temp("small.yml", alias_bomb(4))));
}

TEST_F(YamlReader, InvalidUtf8IsRefusedWithLine) {
  const auto path = write_temp("utf8.yml", "name: a\nval: \"ab\xff\xfe\"\n");
  expect_config_error([&] { cfg::load_yaml_file(path); }, {path + ":2:", "UTF-8"});
  const auto key = write_temp("utf8key.yml", "name: a\n\xc3\x28: 1\n");
  expect_config_error([&] { cfg::load_yaml_file(key); }, {":2:", "UTF-8"});
}

TEST_F(YamlReader, Utf8Validation) {
  EXPECT_EQ(cfg::invalid_utf8_offset("plain ascii"), std::string::npos);
  EXPECT_EQ(cfg::invalid_utf8_offset("caf\xc3\xa9 \xf0\x9f\x98\x80"), std::string::npos);
  EXPECT_EQ(cfg::invalid_utf8_offset("ab\x80"), 2u);            // lone continuation byte
  EXPECT_EQ(cfg::invalid_utf8_offset("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(cfg::invalid_utf8_offset("\xe0\x80\xaf"), 0u);      // overlong, 3 bytes
  EXPECT_EQ(cfg::invalid_utf8_offset("x\xed\xa0\x80"), 1u);     // UTF-16 surrogate
  EXPECT_EQ(cfg::invalid_utf8_offset("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(cfg::invalid_utf8_offset("ok\xe2\x9c"), 2u);        // truncated sequence
}

TEST_F(YamlReader, SetOverridesGetTheSameChecks) {
  YAML::Node root = YAML::Load("a: {b: 1}");
  expect_config_error([&] { cfg::apply_override(root, "a.b=!!python/object/apply:os.system [x]"); },
                      {"--set a.b", "not allowed"});
  expect_config_error([&] { cfg::apply_override(root, "a.b={x: 1, x: 2}"); },
                      {"duplicate key 'x'"});
  expect_config_error([&] { cfg::apply_override(root, "a.b=\"\xff\""); }, {"UTF-8"});
  std::string bomb = alias_bomb(8);
  for (char& c : bomb)
    if (c == '\n') c = ',';
  bomb.pop_back();
  expect_config_error([&] { cfg::apply_override(root, "a.b={" + bomb + "}"); }, {"alias"});
  cfg::apply_override(root, "a.b=[1, 2]");
  EXPECT_EQ(root["a"]["b"][1].as<int>(), 2);
}

TEST_F(YamlReader, DirectoryIsAFileError) {
  const fs::path dir = tmp_ / "adir.yml";
  fs::create_directories(dir);
  const std::string message =
      samdeblur::test::error_of<FileError>([&] { cfg::load_yaml_file(dir.string()); });
  EXPECT_NE(message.find("directory"), std::string::npos) << message;
}
