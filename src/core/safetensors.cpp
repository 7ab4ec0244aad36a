#include "tlm/safetensors.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tlm/check.h"
#include "tlm/file_io.h"

namespace tlm {

using nlohmann::json;

namespace {

int64_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

}  // namespace

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// IEEE binary16 -> binary32, exactly (every half is a float): normal, subnormal, zero, inf, NaN.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa x 2^-24
    const float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace

std::vector<float> SafeTensor::to_floats() const {
  std::vector<float> out(numel());
  if (dtype == "F32") {
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  } else if (dtype == "BF16" || dtype == "F16") {
    const bool bf16 = dtype == "BF16";
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = bf16 ? std::bit_cast<float>(static_cast<uint32_t>(h) << 16) : half_to_float(h);
    }
  } else {
    throw Error("tensor has dtype " + dtype + ", expected F32, BF16 or F16");
  }
  return out;
}

std::vector<int32_t> SafeTensor::to_ints() const {
  std::vector<int32_t> out(numel());
  if (dtype == "I32") {
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(int32_t));
  } else if (dtype == "I64") {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t v;
      std::memcpy(&v, bytes.data() + i * 8, 8);
      out[i] = static_cast<int32_t>(v);
    }
  } else {
    throw Error("tensor has dtype " + dtype + ", expected I32 or I64");
  }
  return out;
}

const SafeTensor& SafeTensorsFile::at(const std::string& name, const std::string& source) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(fmt::format("{}: missing tensor \"{}\"", source, name));
  return it->second;
}

void SafeTensorsFile::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  SafeTensor t{"F32", std::move(shape), {}};
  t.bytes.assign(reinterpret_cast<const char*>(data), t.numel() * sizeof(float));
  tensors[name] = std::move(t);
}

std::vector<int64_t> SafeTensor::to_int64s() const {
  if (dtype != "I64") throw Error("tensor has dtype " + dtype + ", expected I64");
  std::vector<int64_t> out(numel());
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(int64_t));
  return out;
}

void SafeTensorsFile::add_i64(const std::string& name, std::vector<int64_t> shape, const int64_t* data) {
  SafeTensor t{"I64", std::move(shape), {}};
  t.bytes.assign(reinterpret_cast<const char*>(data), t.numel() * sizeof(int64_t));
  tensors[name] = std::move(t);
}

void SafeTensorsFile::add_i32(const std::string& name, std::vector<int64_t> shape, const int32_t* data) {
  SafeTensor t{"I32", std::move(shape), {}};
  t.bytes.assign(reinterpret_cast<const char*>(data), t.numel() * sizeof(int32_t));
  tensors[name] = std::move(t);
}

SafeTensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  auto bad = [&](const std::string& what) {
    return Error(fmt::format("{}: not a valid safetensors file: {}", source, what));
  };
  if (bytes.size() < 8) throw bad(fmt::format("file is {} bytes, shorter than the 8-byte header length", bytes.size()));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  if (header_len > bytes.size() - 8) {
    throw bad(fmt::format("header length {} runs past the end of the file ({} bytes): truncated or foreign file",
                          header_len, bytes.size()));
  }
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(header_len));
  } catch (const json::exception& e) {  // parse_error, or out_of_range for overflowing numbers
    throw bad(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw bad("header is not a JSON object");
  const uint64_t data_start = 8 + header_len, data_len = bytes.size() - data_start;
  SafeTensorsFile file;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw bad("__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw bad("__metadata__ value for \"" + k + "\" is not a string");
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor \"" + name + "\"";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets")) {
      throw bad(where + " lacks dtype, shape or data_offsets");
    }
    SafeTensor t;
    if (!entry["dtype"].is_string()) throw bad(where + ": dtype is not a string");
    t.dtype = entry["dtype"].get<std::string>();
    const int64_t esize = dtype_size(t.dtype);
    if (esize == 0) throw bad(where + ": unknown dtype " + t.dtype);
    if (!entry["shape"].is_array()) throw bad(where + ": shape is not an array");
    for (auto& d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw bad(where + ": shape has a non-integer or negative dim");
      t.shape.push_back(d.get<int64_t>());
    }
    const auto& offs = entry["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
      throw bad(where + ": data_offsets must be two non-negative integers");
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_len) {
      throw bad(fmt::format("{}: data [{}, {}) lies outside the {} data bytes (truncated file?)", where, begin, end,
                            data_len));
    }
    if (static_cast<int64_t>(end - begin) != t.numel() * esize) {
      throw bad(fmt::format("{}: {} data bytes do not match shape {} of {}", where, end - begin, entry["shape"].dump(),
                            t.dtype));
    }
    t.bytes.assign(bytes.data() + data_start + begin, end - begin);
    file.tensors[name] = std::move(t);
  }
  return file;
}

SafeTensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

void write_safetensors(const std::string& path, const SafeTensorsFile& file) {
  json header = json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    TLM_CHECK(static_cast<int64_t>(t.bytes.size()) == t.numel() * dtype_size(t.dtype),
              "tensor {}: byte size does not match its shape", name);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  std::vector<std::string_view> parts{len, text};
  for (const auto& [name, t] : file.tensors) parts.emplace_back(t.bytes);
  write_file_atomic(path, parts);
}

}  // namespace tlm
