// Errors and checks. Every failure a user can cause (bad config, bad file, bad flag) is a
// tlm::Error with a message that names what is wrong; TLM_CHECK adds the source file:line.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tlm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] void fail_at(const char* file, int line, const std::string& message);

}  // namespace tlm

// TLM_CHECK(cond, "format {}", args...): throws tlm::Error("file:line: message") when !cond.
#define TLM_CHECK(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) ::tlm::fail_at(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

// TLM_FAIL("format {}", args...): unconditional tlm::Error with file:line.
#define TLM_FAIL(...) ::tlm::fail_at(__FILE__, __LINE__, fmt::format(__VA_ARGS__))
