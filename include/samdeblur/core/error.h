#pragma once
// Error types of the library. Every runtime failure caused by input (files,
// config keys, shapes) is reported as a samdeblur::Error whose message names
// the offending file, key or value. The library never calls exit().
#include <stdexcept>
#include <string>

namespace samdeblur {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file that cannot be read or parsed; the message starts with the path.
class FileError : public Error {
 public:
  FileError(const std::string& path, const std::string& what)
      : Error(path + ": " + what), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A configuration problem; the message names the dotted key path.
class ConfigError : public Error {
 public:
  using Error::Error;
};

}  // namespace samdeblur
