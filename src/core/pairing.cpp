#include "samdeblur/core/pairing.h"

#include <fmt/format.h>

#include <set>

namespace samdeblur {
namespace fs = std::filesystem;

std::string non_file_kind(const fs::directory_entry& entry) {
  std::error_code ec;
  if (entry.is_regular_file(ec)) return "";
  if (entry.is_symlink(ec) && !fs::exists(entry.path(), ec)) return "a dangling symlink";
  const auto st = fs::status(entry.path(), ec);
  switch (st.type()) {
    case fs::file_type::directory:
      return "a folder";
    case fs::file_type::fifo:
      return "a FIFO";
    case fs::file_type::socket:
      return "a socket";
    case fs::file_type::block:
    case fs::file_type::character:
      return "a device";
    default:
      return "not a regular file";
  }
}

std::vector<std::string> unpaired_files(
    const FolderListing& reference, const std::vector<const FolderListing*>& partners,
    const std::function<std::string(const std::string&)>& key_of) {
  std::vector<std::string> out;
  for (const FolderListing* p : partners) {
    std::set<std::string> claimed;
    for (const auto& [key, path] : reference.files) {
      const std::string k = key_of(key);
      claimed.insert(k);
      if (p->files.count(k)) continue;
      std::string line = fmt::format("{}: no {} named '{}.*' in {}", path, p->what, k, p->dir);
      auto u = p->unusable.find(k);
      if (u != p->unusable.end()) line += " (" + u->second + ")";
      out.push_back(std::move(line));
    }
    for (const auto& [key, path] : p->files) {
      if (claimed.count(key)) continue;
      std::string line =
          fmt::format("{}: no {} partner in {}", path, reference.what, reference.dir);
      auto u = reference.unusable.find(key);
      if (u != reference.unusable.end()) line += " (" + u->second + ")";
      out.push_back(std::move(line));
    }
  }
  return out;
}

std::string format_problem_list(const std::string& headline, const std::vector<std::string>& lines,
                                std::size_t max_lines) {
  std::string msg = headline;
  for (std::size_t i = 0; i < lines.size() && i < max_lines; ++i) msg += "\n  - " + lines[i];
  if (lines.size() > max_lines) msg += fmt::format("\n  ... and {} more", lines.size() - max_lines);
  return msg;
}

}  // namespace samdeblur
