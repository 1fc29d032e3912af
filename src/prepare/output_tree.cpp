#include "samdeblur/prepare/output_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"
#include "samdeblur/core/progress.h"
#include "samdeblur/io/image.h"
#include "samdeblur/masks/sha256.h"

namespace fs = std::filesystem;

namespace samdeblur::prepare {

namespace {

// True when root/rec.path exists with the recorded size and hash.
bool still_valid(const fs::path& root, const FileRecord& rec) {
  std::error_code ec;
  const fs::path p = root / rec.path;
  const auto size = fs::file_size(p, ec);
  if (ec || static_cast<int64_t>(size) != rec.size) return false;
  return masks::sha256_file_hex(p.string()) == rec.sha256;
}

}  // namespace

OutputTree::OutputTree(fs::path root, std::string manifest_name)
    : root_(std::move(root)),
      manifest_(root_ / manifest_name),
      partial_(root_ / (manifest_name + ".partial.tsv")) {
  fs::create_directories(root_);
  // An earlier complete run: its manifest lists every file under unit "" -- re-record
  // the files by unit from the "unit" field, then drop the manifest: it is rewritten
  // last, so a manifest on disk always means a complete tree.
  if (fs::exists(manifest_)) {
    try {
      const auto j = nlohmann::json::parse(std::ifstream(manifest_));
      std::ofstream out(partial_, std::ios::app);
      for (const auto& f : j.at("files")) {
        FileRecord r{f.at("path").get<std::string>(), f.at("size").get<int64_t>(),
                     f.at("sha256").get<std::string>()};
        const auto unit = f.at("unit").get<std::string>();
        out << unit << '\t' << r.path << '\t' << r.size << '\t' << r.sha256 << '\n';
      }
    } catch (const std::exception& e) {
      log::warn(fmt::format("{}: unreadable manifest ignored ({})", manifest_.string(), e.what()));
    }
    fs::remove(manifest_);
  }
  std::ifstream in(partial_);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string unit, path, size, sha;
    // A line cut by a crash has fewer fields or a short hash: ignored (unit redone).
    if (!std::getline(fields, unit, '\t') || !std::getline(fields, path, '\t') ||
        !std::getline(fields, size, '\t') || !std::getline(fields, sha) || sha.size() != 64) {
      continue;
    }
    auto& files = units_[unit];
    files.erase(std::remove_if(files.begin(), files.end(),
                               [&](const FileRecord& r) { return r.path == path; }),
                files.end());
    files.push_back({path, std::stoll(size), sha});
  }
}

bool OutputTree::unit_done(const std::string& unit) const {
  const auto it = units_.find(unit);
  if (it == units_.end() || it->second.empty()) return false;
  for (const auto& rec : it->second) {
    if (!still_valid(root_, rec)) return false;
  }
  return true;
}

FileRecord OutputTree::write(const std::string& rel, const std::vector<unsigned char>& bytes) {
  const fs::path p = root_ / rel;
  fs::create_directories(p.parent_path());
  write_file_atomic(p.string(), bytes.data(), bytes.size());
  masks::Sha256 h;
  h.update(bytes.data(), bytes.size());
  return {rel, static_cast<int64_t>(bytes.size()), h.hex_digest()};
}

FileRecord OutputTree::record(const std::string& rel) const {
  const fs::path p = root_ / rel;
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) throw FileError(p.string(), "cannot stat: " + ec.message());
  return {rel, static_cast<int64_t>(size), masks::sha256_file_hex(p.string())};
}

void OutputTree::commit(const std::string& unit, const std::vector<FileRecord>& files) {
  std::ofstream out(partial_, std::ios::app);
  for (const auto& r : files) {
    out << unit << '\t' << r.path << '\t' << r.size << '\t' << r.sha256 << '\n';
  }
  out.flush();
  if (!out) throw FileError(partial_.string(), "cannot append the resume record");
  units_[unit] = files;
}

const std::vector<FileRecord>& OutputTree::files_of(const std::string& unit) const {
  const auto it = units_.find(unit);
  if (it == units_.end()) throw Error("prepare: no files recorded for '" + unit + "'");
  return it->second;
}

std::string OutputTree::finish(const std::vector<std::string>& units,
                               const std::string& header_json) {
  struct Row {
    FileRecord rec;
    std::string unit;
  };
  std::vector<Row> rows;
  for (const auto& u : units) {
    for (const auto& r : files_of(u)) rows.push_back({r, u});
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.rec.path < b.rec.path; });
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(header_json);
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& row : rows) {
    j["files"].push_back({{"path", row.rec.path},
                          {"size", row.rec.size},
                          {"sha256", row.rec.sha256},
                          {"unit", row.unit}});
  }
  write_file_atomic(manifest_.string(), j.dump(1) + "\n");
  std::error_code ec;
  fs::remove(partial_, ec);
  return manifest_.string();
}

std::vector<unsigned char> read_verified_image(const fs::path& path, bool grayscale) {
  io::read_image_bgr(path.string(), grayscale);  // throws FileError naming the path
  return read_file_bytes(path.string());
}

int64_t copy_pairs(OutputTree& tree, const std::vector<PairSource>& pairs, bool progress,
                   const std::string& label) {
  std::set<std::string> names;
  for (const auto& p : pairs) {
    if (!names.insert(p.name).second) {
      throw FileError(p.target.string(), "a second pair named '" + p.name + "'");
    }
  }
  std::unique_ptr<ProgressBar> bar;
  if (progress) bar = std::make_unique<ProgressBar>(label, static_cast<int64_t>(pairs.size()));
  int64_t skipped = 0;
  for (const auto& p : pairs) {
    if (tree.unit_done(p.name)) {
      ++skipped;
    } else {
      const auto lq = io::read_image_bgr(p.input.string());
      const auto gt = io::read_image_bgr(p.target.string());
      if (lq.size() != gt.size()) {
        throw FileError(p.input.string(),
                        fmt::format("{}x{} pixels, but its target {} has {}x{}", lq.cols, lq.rows,
                                    p.target.string(), gt.cols, gt.rows));
      }
      std::vector<FileRecord> files;
      files.push_back(tree.write("input/" + p.name + p.input.extension().string(),
                                 read_file_bytes(p.input.string())));
      files.push_back(tree.write("target/" + p.name + p.target.extension().string(),
                                 read_file_bytes(p.target.string())));
      tree.commit(p.name, files);
    }
    if (bar) bar->update(1, p.name);
  }
  if (bar) bar->finish();
  return skipped;
}

void check_count(const std::string& what, int64_t expected, int64_t found) {
  if (expected > 0 && expected != found) {
    throw Error(fmt::format("{}: expected {} pairs, found {} (--expect-pairs 0 accepts any count)",
                            what, expected, found));
  }
}

std::vector<fs::path> list_files(const fs::path& dir, const std::string& suffix) {
  if (!fs::is_directory(dir)) throw FileError(dir.string(), "folder not found");
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (!e.is_regular_file()) continue;
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> list_dirs(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw FileError(dir.string(), "folder not found");
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace samdeblur::prepare
