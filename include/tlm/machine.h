// What a record says about where and when it was made.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tlm {

std::string cpu_model();  // /proc/cpuinfo's model name, or "unknown"
std::string now_utc();    // ISO 8601, e.g. 2026-11-27T08:27:55Z
std::string host_name();

// Facts about this build and machine for manifests: tlm version, commit, compiler, host, CPU,
// OpenMP threads, and whether OPENBLAS_CORETYPE caps OpenBLAS's kernels.
nlohmann::json build_facts();

}  // namespace tlm
