#include "tlm/process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "tlm/check.h"

namespace tlm {

namespace fs = std::filesystem;

std::string find_program(const std::string& name, const std::string& install) {
  if (name.find('/') != std::string::npos) {
    TLM_CHECK(fs::is_regular_file(name) && access(name.c_str(), X_OK) == 0, "{}: not an executable file", name);
    return fs::absolute(name).string();
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (fs::is_regular_file(p) && access(p.c_str(), X_OK) == 0) return p.string();
  }
  throw Error(fmt::format("{}: not found on PATH; {}", name, install));
}

void run_program(const std::vector<std::string>& args, const std::string& stdout_path) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  TLM_CHECK(pid >= 0, "could not start {}: {}", args[0], std::strerror(errno));
  if (pid == 0) {
    // The child dies with this process (SIGTERM), and not at all if that has happened already.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(130);
    const int fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) _exit(127);
    close(fd);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    TLM_CHECK(errno == EINTR, "waiting for {}: {}", args[0], std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0, signal = WIFEXITED(status) ? 0 : WTERMSIG(status);
    throw ProgramFailed(fmt::format("{} failed ({}): {}", args[0],
                                    signal ? fmt::format("signal {}", signal) : fmt::format("exit status {}", code),
                                    fmt::join(args, " ")),
                        code, signal);
  }
}

}  // namespace tlm
