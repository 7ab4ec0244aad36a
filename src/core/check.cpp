#include "tlm/check.h"

#include <cstring>

namespace tlm {

[[noreturn]] void fail_at(const char* file, int line, const std::string& message) {
  // Keep only the path from the project root so messages do not leak build machine paths.
  const char* shown = file;
  for (const char* root : {"/src/", "/include/", "/tools/"}) {
    if (const char* p = std::strstr(file, root)) {
      shown = p + 1;
      break;
    }
  }
  throw Error(fmt::format("{} [{}:{}]", message, shown, line));
}

}  // namespace tlm
