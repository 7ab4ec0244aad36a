#include "tlm/machine.h"

#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>

#include "tlm_git_commit.h"  // generated at build time (cmake/GitCommit.cmake): TLM_GIT_COMMIT

namespace tlm {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string host_name() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

nlohmann::json build_facts() {
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  return {{"tlm_version", TLM_VERSION},
          {"commit", TLM_GIT_COMMIT},
          {"compiler", __VERSION__},
          {"host", host_name()},
          {"cpu", cpu_model()},
          {"threads", omp_get_max_threads()},
          {"openblas_coretype", coretype ? nlohmann::json(coretype) : nlohmann::json(nullptr)}};
}

}  // namespace tlm
