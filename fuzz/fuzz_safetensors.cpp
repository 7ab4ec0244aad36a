// libFuzzer target: the safetensors parser on arbitrary bytes (checkpoints, golden fixtures).
#include <cstdint>
#include <string>

#include "tlm/check.h"
#include "tlm/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto f = tlm::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& [name, t] : f.tensors) {
      if (static_cast<int64_t>(t.bytes.size()) > static_cast<int64_t>(size)) std::abort();
    }
  } catch (const tlm::Error&) {
  }
  return 0;
}
