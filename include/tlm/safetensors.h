// The safetensors format (Hugging Face): 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
// raw little-endian tensor bytes. Reading validates everything before trusting any offset.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tlm {

struct SafeTensor {
  std::string dtype;           // "F32", "I32", "I64", ...
  std::vector<int64_t> shape;  // row-major
  std::string bytes;           // raw data
  int64_t numel() const;
  std::vector<float> to_floats() const;    // F32, BF16 or F16, widened exactly (throws otherwise)
  std::vector<int32_t> to_ints() const;    // I32 or I64 (throws otherwise)
  std::vector<int64_t> to_int64s() const;  // I64 only (throws otherwise)
};

struct SafeTensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafeTensor> tensors;

  const SafeTensor& at(const std::string& name, const std::string& source) const;
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data);
  void add_i64(const std::string& name, std::vector<int64_t> shape, const int64_t* data);
};

// Throws tlm::Error naming the file and what is wrong (truncated, bad header, bad offsets...).
SafeTensorsFile read_safetensors(const std::string& path);
SafeTensorsFile parse_safetensors(const std::string& bytes, const std::string& source);
// Atomic write; tensors in name order, 8-byte aligned header as HF writes it.
void write_safetensors(const std::string& path, const SafeTensorsFile& file);

}  // namespace tlm
