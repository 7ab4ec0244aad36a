// The back ends compiled into this build. Adding a device: its folder of kernels, and one line here.
#include <vector>

#include "backend/backend.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef TLM_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#include "tlm/check.h"

namespace tlm {

namespace {

const std::vector<BackendEntry>& entries() {
  static const std::vector<BackendEntry> all = {
      cpu_backend_entry(),
#ifdef TLM_WITH_CUDA
      cuda_backend_entry(),
#endif
  };
  return all;
}

const BackendEntry& entry_for(const Device& device) {
  for (const BackendEntry& e : entries()) {
    if (e.kind == device.kind) return e;
  }
  std::string built;
  for (const BackendEntry& e : entries()) built += (built.empty() ? "" : ", ") + Device{e.kind, 0}.name();
  throw Error(fmt::format("--device {}: this build has no {} back end (built: {}){}", device.name(),
                          device.kind == DeviceKind::kCuda ? "CUDA" : "such", built,
                          device.kind == DeviceKind::kCuda ? "; `make cuda` builds one (CMake -DTLM_CUDA=ON)" : ""));
}

}  // namespace

int device_count(DeviceKind kind) {
  for (const BackendEntry& e : entries()) {
    if (e.kind == kind) return e.count();
  }
  return 0;
}

bool backend_built(DeviceKind kind) {
  for (const BackendEntry& e : entries()) {
    if (e.kind == kind) return true;
  }
  return false;
}

std::shared_ptr<Backend> make_backend(const Device& device, Precision precision) {
  return entry_for(device).make(device, precision);
}

Precision resolve_precision(PrecisionRequest request, const Device& device, std::string* note) {
  const BackendEntry& e = entry_for(device);
  if (request == PrecisionRequest::kFp32) return Precision::kFp32;
  if (request == PrecisionRequest::kBf16) return Precision::kBf16;
  auto [precision, why] = e.auto_precision(device);
  if (note) *note = why;
  return precision;
}

std::shared_ptr<Backend> default_backend() {
  // OpenBLAS whatever TLM_CPU_GEMM says: that GEMM keeps no state, so every thread may share it.
  static const std::shared_ptr<Backend> cpu = make_cpu_backend(Precision::kFp32, kernels::GemmMode::kOpenBlasFp32);
  return cpu;
}

}  // namespace tlm
