#pragma once
// Shared machinery of the preparers (prepare.h): the files of one output tree, the
// record that makes a run resumable, and the manifest written last.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace samdeblur::prepare {

struct FileRecord {
  std::string path;  // relative to the tree's root, '/' separated
  int64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
};

// One pair to copy: input and target of the same picture in the published archive.
struct PairSource {
  std::string name;  // output stem, e.g. "GOPR0384_11_00-000001"
  std::filesystem::path input, target;
};

// The output files of one preparation, rooted at `root` (<output>/<split>).
//
// Resume: a "unit" (a pair, or one source image of gopro-crops) is recorded in
// "<manifest>.partial.tsv" (unit, path, size, sha256 per line) once all its files are
// written; unit_done() is true when every recorded file is still there with the
// recorded size and hash. A manifest from an earlier complete run counts as a record.
class OutputTree {
 public:
  OutputTree(std::filesystem::path root, std::string manifest_name);

  const std::filesystem::path& root() const { return root_; }
  bool unit_done(const std::string& unit) const;
  // Writes `bytes` atomically to root/rel (folders created) and returns its record.
  FileRecord write(const std::string& rel, const std::vector<unsigned char>& bytes);
  // The record of a file already written under root (e.g. by io::write_npz).
  FileRecord record(const std::string& rel) const;
  // Appends the unit's files to the partial record (flushed).
  void commit(const std::string& unit, const std::vector<FileRecord>& files);
  // The recorded files of a unit (after unit_done() or commit()).
  const std::vector<FileRecord>& files_of(const std::string& unit) const;
  // Writes root/<manifest> atomically (files of `units` sorted by path, plus `header`
  // fields as JSON text) and removes the partial record. Returns the manifest path.
  std::string finish(const std::vector<std::string>& units, const std::string& header_json);

 private:
  std::filesystem::path root_, manifest_, partial_;
  std::map<std::string, std::vector<FileRecord>> units_;
};

// Reads and fully decodes an image (io::read_image_bgr, colour or grayscale) and
// returns its bytes; FileError naming the path when it does not decode.
std::vector<unsigned char> read_verified_image(const std::filesystem::path& path,
                                               bool grayscale = false);

// Copies the pairs into root/input/<name><input ext> and root/target/<name><target
// ext>, verifying both decode and have the same size; resumable through `tree`.
// Returns the number of pairs skipped as already done.
int64_t copy_pairs(OutputTree& tree, const std::vector<PairSource>& pairs, bool progress,
                   const std::string& label);

// Throws Error "<what>: expected N pairs, found M" unless expected <= 0 or equal.
void check_count(const std::string& what, int64_t expected, int64_t found);

// Sorted regular files of `dir` whose name ends with `suffix` ("" = all); FileError
// when dir is not a folder.
std::vector<std::filesystem::path> list_files(const std::filesystem::path& dir,
                                              const std::string& suffix = "");
// Sorted sub-folders of `dir`; FileError when dir is not a folder.
std::vector<std::filesystem::path> list_dirs(const std::filesystem::path& dir);

}  // namespace samdeblur::prepare
