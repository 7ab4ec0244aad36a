// RFC 4180 CSV records over a LineReader: quoted fields may hold commas, doubled quotes and
// newlines; errors name the file and the line the record starts on.
#pragma once

#include <string>
#include <vector>

#include "data/line_reader.h"

namespace tlm {

class CsvReader {
 public:
  explicit CsvReader(const std::string& path) : lines_(path) {}

  // Reads the next record into fields; false at the end of the file. A malformed record
  // (unterminated quote, text after a closing quote) throws tlm::Error "file:line: ...".
  bool next(std::vector<std::string>& fields);
  int64_t record_line() const { return record_line_; }  // first line of the last record
  const std::string& path() const { return lines_.path(); }

 private:
  LineReader lines_;
  std::string line_;
  int64_t record_line_ = 0;
};

}  // namespace tlm
