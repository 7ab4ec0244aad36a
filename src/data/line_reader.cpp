#include "data/line_reader.h"

#include <cerrno>
#include <cstring>

#include "tlm/check.h"

namespace tlm {

LineReader::LineReader(const std::string& path) : path_(path) {
  errno = 0;
  file_ = gzopen(path.c_str(), "rb");
  if (!file_) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno ? errno : ENOENT)));
  gzbuffer(file_, 1 << 17);
}

LineReader::~LineReader() {
  if (file_) gzclose(file_);
}

void LineReader::fill() {
  // Keep the unread tail, then append a chunk.
  buf_.erase(0, pos_);
  pos_ = 0;
  const size_t old = buf_.size();
  buf_.resize(old + (1 << 16));
  const int n = gzread(file_, buf_.data() + old, 1 << 16);
  if (n < 0) {
    int code = 0;
    const char* msg = gzerror(file_, &code);
    throw Error(fmt::format("{}:{}: cannot read: {} (truncated or corrupt gzip?)", path_, line_ + 1, msg));
  }
  buf_.resize(old + static_cast<size_t>(n));
  if (n == 0) {
    eof_ = true;
    int code = 0;
    const char* msg = gzerror(file_, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
      throw Error(fmt::format("{}:{}: cannot read: {} (truncated or corrupt gzip?)", path_, line_ + 1, msg));
    }
  }
}

bool LineReader::next(std::string& line) {
  for (;;) {
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start, '\n', buf_.size() - pos_);
    if (nl) {
      const size_t len = static_cast<const char*>(nl) - start;
      line.assign(start, len);
      pos_ += len + 1;
      break;
    }
    if (eof_) {
      if (pos_ >= buf_.size()) return false;
      line.assign(start, buf_.size() - pos_);  // last line without a newline
      pos_ = buf_.size();
      break;
    }
    fill();
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_;
  return true;
}

std::string read_text(const std::string& path) {
  LineReader in(path);
  std::string all, line;
  while (in.next(line)) {
    all += line;
    all += '\n';
  }
  return all;
}

}  // namespace tlm
