// Where a model computes (a device) and in what precision, as a user names them:
// `--device cpu|cuda[:N]`, `--precision fp32|bf16|auto`, and the plan keys `device`, `precision`.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace tlm {

enum class DeviceKind { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;             // which device of its kind (always 0 for the CPU)
  std::string name() const;  // "cpu", "cuda:0"
  bool operator==(const Device&) const = default;
};

// "cpu", "cuda", "cuda:N"; anything else is refused with the accepted forms in the message.
Device parse_device(std::string_view text);

enum class Precision { kFp32, kBf16 };
enum class PrecisionRequest { kFp32, kBf16, kAuto };

std::string precision_name(Precision p);                  // "fp32", "bf16"
std::string precision_request_name(PrecisionRequest p);   // "fp32", "bf16", "auto"
PrecisionRequest parse_precision(std::string_view text);  // "fp32", "bf16", "auto"

// Resolves `request` on `device` (auto asks the device's back end what it computes natively);
// `note` receives auto's one-line reason, for the log (empty for fp32 and bf16).
Precision resolve_precision(PrecisionRequest request, const Device& device, std::string* note = nullptr);

// The devices of `kind` this build and machine have: 1 for the CPU; the GPUs for CUDA (0 in a
// build without its back end, or on a machine without a usable GPU).
int device_count(DeviceKind kind);

class Backend;  // backend/backend.h: the ops and memory of one device at one precision
// The CPU fp32 back end (it computes with the process's OpenMP threads): every model's default.
std::shared_ptr<Backend> default_backend();

}  // namespace tlm
