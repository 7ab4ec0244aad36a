#include "tlm/hash.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "tlm/check.h"

namespace tlm {

uint64_t hash_file(const std::string& path) {
  const std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> st(XXH64_createState(), &XXH64_freeState);
  XXH64_reset(st.get(), 0);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string buf(1 << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw Error(fmt::format("{}: read error: {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    XXH64_update(st.get(), buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return XXH64_digest(st.get());
}

uint64_t hash_string(std::string_view s) { return XXH64(s.data(), s.size(), 0); }

uint64_t hash_bytes(const void* data, size_t size) { return XXH64(data, size, 0); }

uint64_t hash_combine(uint64_t a, uint64_t b) {
  const uint64_t both[2] = {a, b};
  return XXH64(both, sizeof(both), 1);
}

std::string hex16(uint64_t h) { return fmt::format("{:016x}", h); }

}  // namespace tlm
