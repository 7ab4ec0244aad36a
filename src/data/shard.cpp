#include "tlm/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "data/line_reader.h"
#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/hash.h"

namespace tlm {

namespace {

constexpr char kMagic[8] = {'T', 'L', 'M', 'S', 'H', 'A', 'R', 'D'};
constexpr char kTrailer[8] = {'T', 'L', 'M', 'S', 'H', 'E', 'N', 'D'};

// The checksum of a shard's parts, each hashed and chained.
uint64_t shard_checksum(const std::vector<std::string_view>& parts) {
  uint64_t h = 0;
  for (std::string_view p : parts) h = hash_combine(h, hash_bytes(p.data(), p.size()));
  return h;
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// A read-only memory map of a whole file.
class Mapping {
 public:
  explicit Mapping(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error(fmt::format("{}: cannot stat", path));
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) throw Error(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
      data_ = static_cast<const char*>(p);
    }
  }
  ~Mapping() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// Bounds-checked reading from the mapping.
class Cursor {
 public:
  Cursor(const Mapping& m, const std::string& path) : m_(m), path_(path) {}
  const char* take(size_t n, const char* what) {
    if (n > m_.size() - pos_) {
      throw Error(fmt::format("{}: truncated token shard ({} bytes; {} runs past the end)", path_, m_.size(), what));
    }
    const char* p = m_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  void align8() { pos_ = std::min(m_.size(), (pos_ + 7) / 8 * 8); }
  size_t pos() const { return pos_; }

 private:
  const Mapping& m_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void write_shard(const std::string& path, const SequenceSet& set, const ShardKey& key, int32_t vocab_size) {
  const uint32_t id_bytes = vocab_size <= 65536 ? 2 : 4;
  const bool has_labels = !set.labels.empty();
  TLM_CHECK(!has_labels || static_cast<int64_t>(set.labels.size()) == set.size(), "labels do not match sequences");
  std::string head;
  head.append(kMagic, 8);
  put(head, kShardVersion);
  put(head, id_bytes);
  put(head, key.vocab_hash);
  put(head, key.source_hash);
  put(head, key.params_hash);
  put(head, static_cast<uint64_t>(set.size()));
  put(head, static_cast<uint64_t>(set.num_tokens()));
  put(head, static_cast<uint32_t>(set.label_names.size()));
  put(head, static_cast<uint32_t>(has_labels));
  for (const auto& name : set.label_names) {
    put(head, static_cast<uint32_t>(name.size()));
    head += name;
  }
  head.append((8 - head.size() % 8) % 8, '\0');
  std::string ids;
  ids.reserve(set.ids.size() * id_bytes);
  for (int32_t id : set.ids) {
    TLM_CHECK(id >= 0 && id < vocab_size, "token id {} outside the vocabulary of {}", id, vocab_size);
    if (id_bytes == 2) {
      put(ids, static_cast<uint16_t>(id));
    } else {
      put(ids, static_cast<uint32_t>(id));
    }
  }
  std::vector<uint64_t> offsets(set.offsets.begin(), set.offsets.end());
  const std::string_view offsets_bytes(reinterpret_cast<const char*>(offsets.data()), offsets.size() * 8);
  const std::string_view labels_bytes(reinterpret_cast<const char*>(set.labels.data()), set.labels.size() * 4);
  std::string checksum;
  put(checksum, shard_checksum({head, offsets_bytes, labels_bytes, ids}));
  write_file_atomic(path, {head, offsets_bytes, labels_bytes, ids, checksum, {kTrailer, 8}});
}

SequenceSet read_shard(const std::string& path, ShardKey* key_out) {
  const Mapping m(path);
  Cursor c(m, path);
  if (std::memcmp(c.take(8, "the magic"), kMagic, 8) != 0) throw Error(path + ": not a tlm token shard");
  const auto version = c.get<uint32_t>("the version");
  if (version != kShardVersion) {
    throw Error(fmt::format("{}: token shard version {} (this tlm reads {})", path, version, kShardVersion));
  }
  const auto id_bytes = c.get<uint32_t>("the id width");
  if (id_bytes != 2 && id_bytes != 4) throw Error(fmt::format("{}: bad id width {}", path, id_bytes));
  ShardKey key;
  key.vocab_hash = c.get<uint64_t>("the key");
  key.source_hash = c.get<uint64_t>("the key");
  key.params_hash = c.get<uint64_t>("the key");
  const auto n = c.get<uint64_t>("the counts"), tokens = c.get<uint64_t>("the counts");
  const auto n_names = c.get<uint32_t>("the counts");
  const auto has_labels = c.get<uint32_t>("the counts");
  SequenceSet set;
  for (uint32_t i = 0; i < n_names; ++i) {
    const auto len = c.get<uint32_t>("a label name");
    set.label_names.emplace_back(c.take(len, "a label name"), len);
  }
  c.align8();
  // Check the total size before touching the arrays: a truncated file never reads past the end.
  // Counts larger than the file cannot be right; below that the sum cannot overflow.
  const bool plausible = n < m.size() && tokens < m.size();
  const size_t head_size = c.pos();
  const uint64_t expected = plausible ? head_size + (n + 1) * 8 + (has_labels ? n * 4 : 0) + tokens * id_bytes + 16 : 0;
  if (!plausible || expected != m.size()) {
    throw Error(
        fmt::format("{}: token shard is {} bytes, but its header describes {} sequences and {} tokens "
                    "(truncated or corrupt)",
                    path, m.size(), n, tokens));
  }
  {
    // Every byte before the checksum, in the parts it was written in.
    const char* base = m.data();
    const size_t labels_at = head_size + (n + 1) * 8, ids_at = labels_at + (has_labels ? n * 4 : 0);
    const size_t end = ids_at + tokens * id_bytes;
    uint64_t stored;
    std::memcpy(&stored, base + end, 8);
    const uint64_t actual = shard_checksum({{base, head_size},
                                            {base + head_size, (n + 1) * 8},
                                            {base + labels_at, ids_at - labels_at},
                                            {base + ids_at, end - ids_at}});
    if (stored != actual) throw Error(path + ": token shard checksum mismatch (the file is damaged)");
  }
  set.offsets.resize(n + 1);
  std::memcpy(set.offsets.data(), c.take((n + 1) * 8, "the offsets"), (n + 1) * 8);
  for (uint64_t i = 0; i < n; ++i) {
    if (set.offsets[i] > set.offsets[i + 1]) throw Error(path + ": token shard offsets are not increasing");
  }
  if (set.offsets[0] != 0 || static_cast<uint64_t>(set.offsets[n]) != tokens) {
    throw Error(path + ": token shard offsets do not span the tokens");
  }
  if (has_labels) {
    set.labels.resize(n);
    std::memcpy(set.labels.data(), c.take(n * 4, "the labels"), n * 4);
  }
  set.ids.resize(tokens);
  const char* ids = c.take(tokens * id_bytes, "the ids");
  for (uint64_t i = 0; i < tokens; ++i) {
    if (id_bytes == 2) {
      uint16_t v;
      std::memcpy(&v, ids + i * 2, 2);
      set.ids[i] = v;
    } else {
      uint32_t v;
      std::memcpy(&v, ids + i * 4, 4);
      set.ids[i] = static_cast<int32_t>(v);
    }
  }
  c.take(8, "the checksum");
  if (std::memcmp(c.take(8, "the trailer"), kTrailer, 8) != 0) throw Error(path + ": token shard trailer missing");
  if (key_out) *key_out = key;
  return set;
}

SequenceSet cached_sequences(const std::string& cache_dir, const std::string& name, const ShardKey& key,
                             int32_t vocab_size, const std::function<SequenceSet()>& build, bool* built,
                             nlohmann::json* notes) {
  std::filesystem::create_directories(cache_dir);
  const uint64_t id = hash_combine(hash_combine(key.vocab_hash, key.source_hash), key.params_hash);
  const std::string path = fmt::format("{}/{}-{:016x}.tlmshard", cache_dir, name, id);
  const std::string notes_path = path + ".notes.json";
  if (std::filesystem::exists(path) && (!notes || std::filesystem::exists(notes_path))) {
    try {
      ShardKey found;
      SequenceSet set = read_shard(path, &found);
      if (found == key) {
        if (notes) *notes = read_json_file(notes_path);
        if (built) *built = false;
        return set;
      }
    } catch (const std::exception& e) {
      // A damaged cache file is rebuilt below, never trusted.
      fmt::print(stderr, "rebuilding {}: {}\n", path, e.what());
    }
  }
  SequenceSet set = build();
  if (notes) write_file_atomic(notes_path, notes->dump(2) + "\n");
  write_shard(path, set, key, vocab_size);  // last: a shard present means its notes are too
  if (built) *built = true;
  return set;
}

}  // namespace tlm
