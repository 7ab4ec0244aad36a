// Another program run as a child of this one (fastText): found by name, run to its end, and killed
// with this process, so a stopped experiment leaves nothing running.
#pragma once

#include <string>
#include <vector>

#include "tlm/check.h"

namespace tlm {

// `name` as a path, or found on PATH; an error names it and says `install` (how to get it).
std::string find_program(const std::string& name, const std::string& install);

// How a program that ran ended when it failed: its exit status, or the signal that ended it.
class ProgramFailed : public Error {
 public:
  ProgramFailed(const std::string& what, int exit_status, int end_signal)
      : Error(what), status(exit_status), signal(end_signal) {}
  int status, signal;
};

// Runs args[0] (a path) with args, its standard output into `stdout_path`, its standard error to
// ours; Error when it cannot start, ProgramFailed when it ends by a signal or with a non-zero status.
void run_program(const std::vector<std::string>& args, const std::string& stdout_path);

}  // namespace tlm
