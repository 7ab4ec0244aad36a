// Content hashes (XXH64) that name caches, runs and data in manifests: stable across runs and
// machines, not cryptographic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tlm {

uint64_t hash_file(const std::string& path);  // XXH64 of the file's bytes (gzip files as stored)
uint64_t hash_string(std::string_view s);     // XXH64
uint64_t hash_bytes(const void* data, size_t size);
uint64_t hash_combine(uint64_t a, uint64_t b);
std::string hex16(uint64_t h);  // 16 lowercase hex digits, as manifests write hashes

}  // namespace tlm
