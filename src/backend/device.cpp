#include "tlm/device.h"

#include <charconv>

#include "tlm/check.h"

namespace tlm {

std::string Device::name() const { return kind == DeviceKind::kCpu ? "cpu" : fmt::format("cuda:{}", index); }

Device parse_device(std::string_view text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {DeviceKind::kCuda, 0};
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() && index >= 0) {
      return {DeviceKind::kCuda, index};
    }
  }
  throw Error(fmt::format("\"{}\" is not a device: use cpu, cuda or cuda:N", text));
}

std::string precision_name(Precision p) { return p == Precision::kFp32 ? "fp32" : "bf16"; }

std::string precision_request_name(PrecisionRequest p) {
  switch (p) {
    case PrecisionRequest::kFp32:
      return "fp32";
    case PrecisionRequest::kBf16:
      return "bf16";
    case PrecisionRequest::kAuto:
      return "auto";
  }
  return "?";
}

PrecisionRequest parse_precision(std::string_view text) {
  if (text == "fp32") return PrecisionRequest::kFp32;
  if (text == "bf16") return PrecisionRequest::kBf16;
  if (text == "auto") return PrecisionRequest::kAuto;
  throw Error(fmt::format("precision \"{}\" is not one of: fp32, bf16, auto", text));
}

}  // namespace tlm
