#include "samdeblur/core/staging_dir.h"

#include <unistd.h>

#include <filesystem>

#include "samdeblur/core/atomic_file.h"
#include "samdeblur/core/error.h"
#include "samdeblur/core/log.h"

namespace samdeblur {
namespace fs = std::filesystem;

namespace {

constexpr const char* kStagingSep = ".staging-";
constexpr const char* kOldSep = ".old-";

// "<target><sep><pid>" for this process.
std::string own_name(const std::string& target, const char* sep) {
  return target + sep + std::to_string(::getpid());
}

}  // namespace

std::vector<std::string> StagingDir::clean_leftovers(const std::string& target) {
  std::vector<std::string> handled;
  const fs::path t = fs::path(target).lexically_normal();
  const fs::path parent = t.has_parent_path() ? t.parent_path() : fs::path(".");
  const std::string base = t.filename().string();
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) return handled;
  std::vector<fs::path> staging, old;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(base, 0) != 0) continue;
    const std::string rest = name.substr(base.size());
    for (const char* sep : {kStagingSep, kOldSep}) {
      if (rest.rfind(sep, 0) != 0) continue;
      const long pid = trailing_pid(name, sep);
      if (pid < 0 || process_alive(pid)) continue;
      (sep == kStagingSep ? staging : old).push_back(e.path());
    }
  }
  if (ec) throw FileError(parent.string(), "cannot list folder: " + ec.message());
  for (const auto& p : old) {
    std::error_code rec;
    if (!fs::exists(t, rec)) {
      // Killed between the two renames of commit(): the old result is the newest complete one.
      fs::rename(p, t, rec);
      if (rec) throw FileError(p.string(), "cannot restore to " + target + ": " + rec.message());
      log::warn("restored " + target + " from " + p.string() + " (left by an interrupted run)");
    } else {
      fs::remove_all(p, rec);
      if (rec) throw FileError(p.string(), "cannot remove leftover folder: " + rec.message());
    }
    handled.push_back(p.string());
  }
  for (const auto& p : staging) {
    std::error_code rec;
    fs::remove_all(p, rec);
    if (rec) throw FileError(p.string(), "cannot remove leftover staging folder: " + rec.message());
    log::info("removed " + p.string() + " (staging folder of an interrupted run)");
    handled.push_back(p.string());
  }
  return handled;
}

StagingDir::StagingDir(std::string target, std::vector<std::string> markers,
                       std::vector<std::string> carry_over)
    : target_(fs::path(std::move(target)).lexically_normal().string()),
      carry_over_(std::move(carry_over)) {
  if (target_.empty() || target_ == "." || target_ == "/")
    throw FileError(target_, "not a usable output folder");
  if (!target_.empty() && target_.back() == '/') target_.pop_back();
  std::error_code ec;
  if (fs::exists(target_, ec) && !fs::is_directory(target_, ec))
    throw FileError(target_, "output path exists and is not a folder");
  clean_leftovers(target_);
  if (!markers.empty() && fs::is_directory(target_, ec)) {
    bool ours = true, marked = false;
    for (const auto& e : fs::directory_iterator(target_, ec)) {
      const std::string name = e.path().filename().string();
      for (const auto& m : markers) marked = marked || name == m;
      bool carried = false;
      for (const auto& c : carry_over_) carried = carried || name == c;
      ours = ours && carried;
    }
    if (!marked && !ours) {
      std::string list;
      for (const auto& m : markers) list += (list.empty() ? "" : ", ") + m;
      throw FileError(target_,
                      "folder exists and does not hold a previous result (no " + list +
                          "); refusing to replace it: choose a new or empty output folder");
    }
  }
  for (const auto& p : remove_stale_temporaries(target_))
    log::info("removed " + p + " (temporary file of an interrupted run)");
  staging_ = own_name(target_, kStagingSep);
  fs::remove_all(staging_, ec);  // a leftover of a process that had our PID
  fs::create_directories(staging_, ec);
  if (ec) throw FileError(staging_, "cannot create staging folder: " + ec.message());
}

StagingDir::~StagingDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void StagingDir::commit() {
  if (committed_) throw Error("StagingDir::commit called twice for " + target_);
  std::error_code ec;
  const bool had_old = fs::exists(target_, ec);
  if (had_old) {
    for (const auto& name : carry_over_) {
      const fs::path from = fs::path(target_) / name, to = fs::path(staging_) / name;
      std::error_code cec;
      if (!fs::exists(from, cec) || fs::exists(to, cec)) continue;
      fs::rename(from, to, cec);
      if (cec) throw FileError(from.string(), "cannot move into the new result: " + cec.message());
    }
  }
  const std::string old = own_name(target_, kOldSep);
  if (had_old) {
    fs::rename(target_, old, ec);
    if (ec) throw FileError(target_, "cannot move aside to " + old + ": " + ec.message());
  }
  fs::rename(staging_, target_, ec);
  if (ec) {
    std::error_code rec;
    if (had_old) fs::rename(old, target_, rec);
    throw FileError(target_, "cannot move " + staging_ + " into place: " + ec.message());
  }
  committed_ = true;
  if (had_old) {
    fs::remove_all(old, ec);
    if (ec) log::warn("cannot remove the previous result " + old + ": " + ec.message());
  }
}

}  // namespace samdeblur
