// Token shards: tokenized corpora and datasets cached as versioned binary files, memory mapped
// when read, and keyed by what made them (vocabulary, source bytes, tokenization parameters)
// so a changed source or vocabulary is detected and the shard rebuilt.
//
// Layout (little-endian): "TLMSHARD", u32 version, u32 id bytes (2 when the vocabulary fits in
// uint16, else 4), u64 vocab hash, u64 source hash, u64 params hash, u64 sequences, u64 tokens,
// u32 label names, u32 has labels, the label names (u32 length + bytes each), zero padding to
// 8 bytes, u64 offsets[sequences + 1], i32 labels[sequences] (if any), ids, u64 checksum (XXH64
// of the header, offsets, labels and ids, each hashed and chained), "TLMSHEND".
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tlm/dataset.h"

namespace tlm {

constexpr uint32_t kShardVersion = 2;

struct ShardKey {
  uint64_t vocab_hash = 0;   // Vocab::hash()
  uint64_t source_hash = 0;  // hash_file() of the source(s)
  uint64_t params_hash = 0;  // hash_string() of the tokenization parameters
  bool operator==(const ShardKey&) const = default;
};

void write_shard(const std::string& path, const SequenceSet& set, const ShardKey& key, int32_t vocab_size);

// Reads a shard through mmap, checking magic, version, sizes, checksum and trailer; throws naming
// the file and what is wrong.
SequenceSet read_shard(const std::string& path, ShardKey* key = nullptr);

// The shard for `key` in cache_dir (file name from `name` and the key): read if present and
// intact, else built with `build`, written atomically and returned. *built says which. `notes`
// (optional) is kept in a JSON file beside the shard: whatever the build wrote there (e.g. how
// many bad rows it skipped) is given back when the shard is read from the cache.
SequenceSet cached_sequences(const std::string& cache_dir, const std::string& name, const ShardKey& key,
                             int32_t vocab_size, const std::function<SequenceSet()>& build, bool* built = nullptr,
                             nlohmann::json* notes = nullptr);

}  // namespace tlm
