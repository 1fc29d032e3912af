#include "samdeblur/sweep/cell.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "samdeblur/config/yaml_reader.h"
#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/dataset/paired.h"
#include "samdeblur/masks/cache.h"
#include "samdeblur/masks/sha256.h"

namespace samdeblur::sweep {
namespace fs = std::filesystem;

namespace {

// The key of the variant config's one evaluated dataset (all others are removed).
std::string keep_one_eval_dataset(YAML::Node& root, const std::string& source) {
  YAML::Node datasets = root["datasets"];
  if (!datasets.IsDefined() || !datasets.IsMap())
    throw ConfigError(fmt::format("{}: 'datasets' must be a mapping", source));
  config::Section section(datasets, "datasets", source);
  std::vector<std::string> eval_keys, other_keys;
  for (const auto& key : section.keys())
    (dataset::is_train_dataset(section, key) ? other_keys : eval_keys).push_back(key);
  if (eval_keys.size() != 1)
    throw ConfigError(fmt::format(
        "{}: a sweep variant's config must evaluate exactly one dataset, it has {} ({})", source,
        eval_keys.size(), fmt::join(eval_keys, ", ")));
  for (const auto& key : other_keys) datasets.remove(key);
  return eval_keys.front();
}

void apply_dataset(YAML::Node ds, const SweepDataset& d, const std::string& output_dir) {
  ds["name"] = d.name;
  if (!d.dataroot_lq.empty()) ds["dataroot_lq"] = d.dataroot_lq;
  if (!d.dataroot_gt.empty()) ds["dataroot_gt"] = d.dataroot_gt;
  const std::string type = ds["type"] && ds["type"].IsScalar() ? ds["type"].as<std::string>() : "";
  std::string folder;
  if (type == "PairedImageMaskDataset") folder = d.dataroot_label_masks;
  if (type == "PairedImageGroupMaskDataset") folder = d.dataroot_grouped_masks;
  if (!folder.empty()) {
    ds["dataroot_mask"] = folder;
    ds.remove("mask_source");
  } else if (d.mask_source.IsDefined() && !d.mask_source.IsNull() && type != "PairedImageDataset") {
    YAML::Node source = YAML::Clone(d.mask_source);
    if (!source["cache_dir"])
      source["cache_dir"] = (fs::path(output_dir) / "mask_cache" / slug(d.name)).string();
    ds["mask_source"] = source;
    ds.remove("dataroot_mask");
  }
}

std::string file_identity(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw FileError(path, "cannot read its size: " + ec.message());
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) throw FileError(path, "cannot read its modification time: " + ec.message());
  return fmt::format("{} {} {}\n", path, size, mtime.time_since_epoch().count());
}

double json_double(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.contains(key)) throw FileError(file, "has no key '" + key + "'");
  const auto& v = j.at(key);
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  throw FileError(file, "key '" + key + "' is not a number: " + v.dump());
}

double csv_double(const std::string& s, const std::string& file, std::size_t line) {
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  try {
    std::size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw FileError(file, fmt::format("line {}: '{}' is not a number", line, s));
}

}  // namespace

eval::EvalConfig cell_config(const SweepConfig& sweep, std::size_t v, std::size_t d,
                             const std::string& output_dir) {
  const Variant& variant = sweep.variants.at(v);
  const SweepDataset& data = sweep.datasets.at(d);
  const std::string& file = variant.config_for(data.name);
  try {
    YAML::Node root = config::load_yaml_file(file);
    const std::string key = keep_one_eval_dataset(root, file);
    apply_dataset(root["datasets"][key], data, output_dir);
    root["path"]["pretrain_network_g"] = variant.checkpoint;
    root["val"]["save_img"] = true;
    return eval::parse_eval_config(root, file);
  } catch (const Error& e) {
    throw ConfigError(fmt::format("{}: variant '{}' x dataset '{}': {}", sweep.source, variant.name,
                                  data.name, e.what()));
  }
}

std::vector<Cell> plan_cells(const SweepConfig& sweep, const std::string& output_dir) {
  std::vector<Cell> cells;
  for (std::size_t d = 0; d < sweep.datasets.size(); ++d)
    for (std::size_t v = 0; v < sweep.variants.size(); ++v) {
      Cell c;
      c.variant = v;
      c.dataset = d;
      c.variant_name = sweep.variants[v].name;
      c.dataset_name = sweep.datasets[d].name;
      c.dir = (fs::path(output_dir) / slug(c.variant_name) / slug(c.dataset_name)).string();
      c.config = cell_config(sweep, v, d, output_dir);
      cells.push_back(std::move(c));
    }
  return cells;
}

std::string cell_fingerprint(const Cell& cell, std::map<std::string, std::string>& checkpoint_sha) {
  const auto& cfg = cell.config;
  YAML::Emitter emitter;
  emitter << cfg.resolved;
  std::string text =
      fmt::format("samdeblur-sweep-cell v{}\nconfig\n{}\n", kCellFormatVersion, emitter.c_str());
  const std::string& ckpt = cfg.path.pretrain_network_g;
  auto it = checkpoint_sha.find(ckpt);
  if (it == checkpoint_sha.end())
    it = checkpoint_sha.emplace(ckpt, masks::sha256_file_hex(ckpt)).first;
  text += "checkpoint " + it->second + "\ndata\n";
  for (const auto& ds : cfg.datasets) {
    for (const auto& s : dataset::list_samples(ds))
      for (const auto* p : {&s.lq, &s.gt, &s.mask})
        if (!p->empty()) text += file_identity(*p);
    if (ds.needs_masks() && ds.mask_source.on_the_fly())
      text += "masks " + masks::mask_cache_settings(ds.mask_source) + "\n";
  }
  return masks::sha256_hex(text);
}

bool cell_is_finished(const std::string& dir, const std::string& fingerprint) {
  const fs::path file = fs::path(dir) / kCellFile;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || !fs::is_regular_file(fs::path(dir) / "summary.json", ec) ||
      !fs::is_regular_file(fs::path(dir) / "metrics.csv", ec))
    return false;
  std::ifstream in(file);
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.value("fingerprint", std::string()) == fingerprint;
}

void mark_cell_finished(const Cell& cell, const std::string& fingerprint) {
  const nlohmann::json j = {{"format_version", kCellFormatVersion},
                            {"variant", cell.variant_name},
                            {"dataset", cell.dataset_name},
                            {"config", cell.config.source},
                            {"checkpoint", cell.config.path.pretrain_network_g},
                            {"fingerprint", fingerprint}};
  write_file_atomic((fs::path(cell.dir) / kCellFile).string(), j.dump(2) + "\n");
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}

CellResult read_cell_result(const Cell& cell) {
  CellResult r;
  r.variant = cell.variant_name;
  r.dataset = cell.dataset_name;
  r.dir = cell.dir;
  const std::string summary_path = (fs::path(cell.dir) / "summary.json").string();
  const auto bytes = read_file_bytes(summary_path);
  const auto summary = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (!summary.is_object()) throw FileError(summary_path, "is not a JSON object");
  r.psnr = json_double(summary, "psnr", summary_path);
  r.ssim = json_double(summary, "ssim", summary_path);
  r.mcr = json_double(summary, "mcr", summary_path);
  r.psnr_input = json_double(summary, "psnr_input", summary_path);
  r.count = static_cast<int64_t>(json_double(summary, "count", summary_path));

  const std::string csv_path = (fs::path(cell.dir) / "metrics.csv").string();
  std::ifstream in(csv_path);
  std::string line;
  if (!in || !std::getline(in, line)) throw FileError(csv_path, "cannot be read or is empty");
  const auto header = split_csv_line(line);
  auto column = [&](const std::string& name) {
    for (std::size_t k = 0; k < header.size(); ++k)
      if (header[k] == name) return k;
    throw FileError(csv_path, "has no column '" + name + "'");
  };
  const std::size_t c_name = column("name"), c_psnr = column("psnr"), c_ssim = column("ssim"),
                    c_in = column("psnr_input"), c_col = column("collapsed");
  for (std::size_t n = 2; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const auto f = split_csv_line(line);
    if (f.size() != header.size())
      throw FileError(csv_path, fmt::format("line {} has {} fields, the header {}", n, f.size(),
                                            header.size()));
    ImageRow row;
    row.name = f[c_name];
    row.psnr = csv_double(f[c_psnr], csv_path, n);
    row.ssim = csv_double(f[c_ssim], csv_path, n);
    row.psnr_input = csv_double(f[c_in], csv_path, n);
    row.collapsed = f[c_col] == "1";
    r.images.push_back(row);
  }
  return r;
}

}  // namespace samdeblur::sweep
