#include "data/csv.h"

#include "tlm/check.h"

namespace tlm {

bool CsvReader::next(std::vector<std::string>& fields) {
  fields.clear();
  if (!lines_.next(line_)) return false;
  record_line_ = lines_.line_number();
  std::string field;
  bool quoted = false, after_quote = false;
  size_t i = 0;
  for (;;) {
    if (i == line_.size()) {
      if (quoted) {  // the field goes on on the next line
        if (!lines_.next(line_)) {
          throw Error(
              fmt::format("{}:{}: unterminated quoted field (the file ends inside quotes)", path(), record_line_));
        }
        field.push_back('\n');
        i = 0;
        continue;
      }
      fields.push_back(std::move(field));
      return true;
    }
    const char c = line_[i++];
    if (quoted) {
      if (c == '"') {
        if (i < line_.size() && line_[i] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        field.push_back(c);
      }
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
      after_quote = false;
    } else if (after_quote) {
      throw Error(
          fmt::format("{}:{}: unexpected character '{}' after a closing quote", path(), lines_.line_number(), c));
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else {
      field.push_back(c);
    }
  }
}

}  // namespace tlm
