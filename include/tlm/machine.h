// What a record says about where and when it was made.
#pragma once

#include <string>

namespace tlm {

std::string cpu_model();  // /proc/cpuinfo's model name, or "unknown"
std::string now_utc();    // ISO 8601, e.g. 2026-11-27T08:27:55Z

}  // namespace tlm
