#pragma once
// Pairing files of several folders by name (lq / gt / mask folders of a
// dataset), with a report that names every file without a partner instead of
// only comparing counts. Entries named like a data file that cannot be read as
// one (a dangling symlink, a FIFO, a folder) are listed with what they are.
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace samdeblur {

struct FolderListing {
  std::string what;  // e.g. "lq image", for messages
  std::string dir;
  std::map<std::string, std::string> files;     // key (file stem) -> path of a usable file
  std::map<std::string, std::string> unusable;  // key -> "<path> is a dangling symlink" etc.
};

// "" for a regular file (or a symlink to one); otherwise what the entry is:
// "a dangling symlink", "a folder", "a FIFO", "a socket", "a device", "not a regular file".
std::string non_file_kind(const std::filesystem::directory_entry& entry);

// Every file without a partner, one line each, sorted: a reference file whose
// key_of(key) is missing from a partner folder ("<gt path>: no lq image named
// '<k>.*' in <dir>", plus the unusable entry of that name if there is one), and
// every partner file that no reference file claims. Empty when all pair.
std::vector<std::string> unpaired_files(
    const FolderListing& reference, const std::vector<const FolderListing*>& partners,
    const std::function<std::string(const std::string&)>& key_of);

// One message for an error: a headline, then up to `max_lines` of `lines`
// ("  - ..."), then "  ... and N more".
std::string format_problem_list(const std::string& headline, const std::vector<std::string>& lines,
                                std::size_t max_lines = 20);

}  // namespace samdeblur
