// Mask options are declared once (config/fields.h): every declared generator
// and superpixel field reaches the mask cache key, the YAML reader and the CLI
// flags; the key text of existing settings is unchanged (existing caches stay valid).
#include "samdeblur/masks/options.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "samdeblur/config/cli_fields.h"
#include "samdeblur/core/error.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/masks/source.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace samdeblur;
using namespace samdeblur::masks;

namespace {

// A value different from `v` and inside any declared range.
template <class T>
void perturb(T& v) {
  using U = std::decay_t<T>;
  if constexpr (std::is_same_v<U, std::optional<int64_t>>)
    v = v.value_or(1) + 1;
  else if constexpr (std::is_same_v<U, std::vector<at::Tensor>>)
    v = {torch::tensor({0.25, 0.75}, torch::kFloat64).reshape({1, 2})};
  else if constexpr (std::is_integral_v<U>)
    v = v + 1;
  else if constexpr (std::is_floating_point_v<U>)
    v = v + static_cast<U>(0.0625);
  else
    static_assert(sizeof(U) == 0, "add a perturbation for this field type");
}

// Copies of `base`, each with exactly one declared field changed; name -> copy.
template <class Options>
std::vector<std::pair<std::string, Options>> one_field_changed(const Options& base) {
  std::vector<std::pair<std::string, Options>> out;
  const auto names = config::field_names<Options>();
  for (std::size_t i = 0; i < names.size(); ++i) {
    Options o = base;
    std::size_t k = 0;
    config::for_each_field(o, [&](const config::Field&, auto& value) {
      if (k++ == i) perturb(value);
    });
    out.emplace_back(names[i], o);
  }
  return out;
}

// A stand-in SAM checkpoint file (only its size and time reach the cache key).
struct Checkpoint {
  test::TempDir dir{"masks_options"};
  fs::path path = test::write_text(dir / "sam.pth", "not a real checkpoint");
};

config::Section section_of(const std::string& yaml, YAML::Node* keep) {
  *keep = YAML::Load(yaml);
  return config::Section(*keep, "generator", "test.yml");
}

}  // namespace

TEST(MaskOptions, EveryGeneratorFieldReachesTheCacheKey) {
  Checkpoint ckpt;
  MaskSourceOptions base;
  base.type = "sam";
  base.checkpoint = ckpt.path.string();
  const std::string key = mask_cache_settings(base);
  const auto changed = one_field_changed(base.generator);
  ASSERT_EQ(changed.size(), 12u) << "a generator option was added: this test covers it";
  std::set<std::string> keys{key};
  for (const auto& [name, generator] : changed) {
    MaskSourceOptions o = base;
    o.generator = generator;
    const std::string k = mask_cache_settings(o);
    EXPECT_NE(k, key) << "generator." << name << " is missing from the mask cache key";
    EXPECT_NE(k.find("generator." + name + "="), std::string::npos) << k;
    keys.insert(k);
  }
  EXPECT_EQ(keys.size(), changed.size() + 1) << "two fields changed the key the same way";
}

TEST(MaskOptions, EverySuperpixelFieldReachesTheCacheKey) {
  MaskSourceOptions base;
  base.type = "superpixels";
  const std::string key = mask_cache_settings(base);
  for (const auto& [name, superpixels] : one_field_changed(base.superpixels)) {
    MaskSourceOptions o = base;
    o.superpixels = superpixels;
    EXPECT_NE(mask_cache_settings(o), key) << "superpixels." << name << " is missing";
  }
}

// The text hashed into cache keys before the fields were declared once, byte
// for byte (a change here invalidates every cache: bump kMaskCacheFormatVersion).
TEST(MaskOptions, CacheKeyTextOfExistingSettingsIsUnchanged) {
  MaskSourceOptions sp;
  sp.type = "superpixels";
  EXPECT_EQ(mask_cache_settings(sp),
            "samdeblur-mask-cache\nformat_version=1\nsource=superpixels\n"
            "superpixels.region_size=48\nsuperpixels.ruler=10\nsuperpixels.iterations=10\n"
            "superpixels.min_element_size_percent=25\nencoding=official\n");
  Checkpoint ckpt;
  MaskSourceOptions s;
  s.type = "sam";
  s.checkpoint = ckpt.path.string();
  const std::string text = mask_cache_settings(s);
  const std::string generator = text.substr(text.find("generator."));
  EXPECT_EQ(generator,
            "generator.points_per_side=32\ngenerator.point_grids=none\n"
            "generator.points_per_batch=64\ngenerator.pred_iou_thresh=0.88\n"
            "generator.stability_score_thresh=0.95\ngenerator.stability_score_offset=1\n"
            "generator.box_nms_thresh=0.7\ngenerator.crop_n_layers=0\n"
            "generator.crop_nms_thresh=0.7\ngenerator.crop_overlap_ratio=0.3413333333333333\n"
            "generator.crop_n_points_downscale_factor=1\ngenerator.min_mask_region_area=0\n"
            "encoding=official\n");
  s.generator.points_per_side.reset();
  s.generator.point_grids = {torch::tensor({0.5, 0.5}, torch::kFloat64).reshape({1, 2})};
  const std::string grids = mask_cache_settings(s);
  EXPECT_NE(grids.find("generator.points_per_side=none\n"), std::string::npos) << grids;
  EXPECT_NE(grids.find("generator.point_grids=1 grids sha256 "), std::string::npos) << grids;
}

TEST(MaskOptions, YamlReadsEveryDeclaredGeneratorField) {
  const sam::MaskGeneratorOptions defaults;
  for (const auto& [name, expected] : one_field_changed(defaults)) {
    if (name == "point_grids") continue;  // needs points_per_side: null (below)
    YAML::Node root = YAML::Node(YAML::NodeType::Map);
    sam::MaskGeneratorOptions copy = expected;
    config::for_each_field(copy, [&](const config::Field& f, auto& value) {
      using T = std::decay_t<decltype(value)>;
      if constexpr (!std::is_same_v<T, std::vector<at::Tensor>>)
        if (f.name == name) root[f.name] = YAML::Load(config::FieldCodec<T>::text(value));
    });
    const auto got = parse_generator_options(config::Section(root, "g", "t.yml"));
    EXPECT_EQ(config::fields_text(got, "g"), config::fields_text(expected, "g")) << name;
  }
  YAML::Node keep;
  const auto g = parse_generator_options(
      section_of("points_per_side: null\npoint_grids: [[[0.25, 0.75]]]\n", &keep));
  EXPECT_FALSE(g.points_per_side);
  ASSERT_EQ(g.point_grids.size(), 1u);
  // Ranges come from the declarations, with the dotted key in the error.
  for (const std::string bad :
       {"points_per_side: 0", "points_per_batch: 0", "crop_n_layers: -1", "crop_overlap_ratio: 1.0",
        "min_mask_region_area: -1", "crop_n_points_downscale_factor: 0"}) {
    const std::string err = test::error_of<ConfigError>(
        [&] { parse_generator_options(section_of(bad + "\n", &keep)); });
    EXPECT_FALSE(err.empty()) << bad << " must be refused";
    const std::string key = "generator." + bad.substr(0, bad.find(':')) + ": must be";
    EXPECT_NE(err.find(key), std::string::npos) << err;
    EXPECT_NE(err.find("test.yml"), std::string::npos) << err;
  }
}

TEST(MaskOptions, EveryScalarFieldHasARangeCheckedFlag) {
  CLI::App app{"test"};
  MaskSourceOptions o;
  const auto gen = cli::add_field_flags(app, o.generator);
  const auto sp =
      cli::add_field_flags(app, o.superpixels, "superpixel-", {{"region_size", "superpixel-size"}});
  EXPECT_EQ(gen.size(), config::field_names<sam::MaskGeneratorOptions>().size() - 1)
      << "every generator field but point_grids (a list) has a flag";
  EXPECT_EQ(sp.size(), config::field_names<SuperpixelOptions>().size());
  for (const auto& name : config::field_names<sam::MaskGeneratorOptions>())
    if (name != "point_grids") {
      EXPECT_NO_THROW(app.get_option(cli::flag_name("", name))) << name;
    }
  EXPECT_NO_THROW(app.get_option("--superpixel-size"));
  EXPECT_NO_THROW(app.get_option("--superpixel-ruler"));

  auto parse = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "prog");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    o = {};
    app.clear();
    return cli::parse_command_line(app, static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(parse({"--points-per-side", "8", "--crop-overlap-ratio", "0.5", "--superpixel-size",
                   "12", "--superpixel-ruler", "2.5"}),
            std::nullopt);
  EXPECT_EQ(*o.generator.points_per_side, 8);
  EXPECT_DOUBLE_EQ(o.generator.crop_overlap_ratio, 0.5);
  EXPECT_EQ(o.superpixels.region_size, 12);
  EXPECT_FLOAT_EQ(o.superpixels.ruler, 2.5f);
  EXPECT_EQ(parse({"--points-per-side", "0"}), 2);
  EXPECT_EQ(parse({"--crop-overlap-ratio", "1"}), 2);
  EXPECT_EQ(parse({"--superpixel-ruler", "0"}), 2);
  EXPECT_EQ(parse({"--min-mask-region-area", "-1"}), 2);
}

TEST(MaskOptions, FactoryKnowsEveryTypeAndRejectsOthers) {
  EXPECT_EQ(mask_source_types(), (std::vector<std::string>{"sam", "superpixels", "files"}));
  MaskSourceOptions o;
  o.type = "superpixels";
  EXPECT_NE(make_mask_source(o)->describe().find("superpixels"), std::string::npos);
  o.type = "slic";
  const std::string err = test::error_of<ConfigError>([&] { make_mask_source(o); });
  EXPECT_NE(err.find("sam, superpixels"), std::string::npos) << err;
  o.type = "sam";
  o.generator.points_per_batch = 0;  // checked when the source is made, before any model load
  EXPECT_THROW(make_mask_source(o), ConfigError);
}
