// Registration of the CPU back end (backend/registry.cpp lists it).
#pragma once

#include "backend/backend.h"
#include "kernels/cpu/gemm_cpu.h"

namespace tlm {

BackendEntry cpu_backend_entry();
// The CPU back end with a chosen GEMM (tests compare them; the registry picks one by CPU and
// environment): fp32 takes kOpenBlasFp32 or kOneDnnFp32, bf16 kBf16Emulated or kBf16OneDnn.
// absorb = false: without absorbed attention (absorbs_attention() false), as a back end that lacks
// it runs a classifier's last layer; tests check that path on the CPU.
std::unique_ptr<Backend> make_cpu_backend(Precision precision, kernels::GemmMode gemm, bool absorb = true);

}  // namespace tlm
