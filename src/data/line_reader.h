// Line reading over plain or gzip files (zlib reads both), with line numbers and a clear error
// for truncated or corrupt gzip data.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>

namespace tlm {

class LineReader {
 public:
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its "\n" (and a "\r" before it); false at the end.
  bool next(std::string& line);
  int64_t line_number() const { return line_; }  // of the line last returned
  const std::string& path() const { return path_; }

 private:
  void fill();
  std::string path_;
  gzFile file_ = nullptr;
  int64_t line_ = 0;
  std::string buf_;  // read but not yet returned: buf_[pos_, size)
  size_t pos_ = 0;
  bool eof_ = false;
};

// The whole (plain or gzip) file as text, lines joined with "\n" (CRLF read as LF).
std::string read_text(const std::string& path);

}  // namespace tlm
