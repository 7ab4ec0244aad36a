#include "tlm/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tlm/check.h"
#include "tlm/file_io.h"
#include "tlm/machine.h"

namespace tlm {

namespace {

std::string lock_path(const std::string& dir) { return (std::filesystem::path(dir) / FolderLock::kFileName).string(); }

}  // namespace

FolderLock::FolderLock(const std::string& dir, const std::string& what) {
  const std::string path = lock_path(dir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot open the {} lock: {}", path, what, std::strerror(errno)));
  int rc = -1, err = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    rc = ::flock(fd_, LOCK_EX | LOCK_NB);
    err = errno;
    if (rc == 0 || err != EWOULDBLOCK) break;
    ::usleep(10000);  // another process may only be probing the lock (is_held) at this moment
  }
  if (rc != 0) {
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw Error(fmt::format("{}: the {} is in use by another tlm process ({}); wait for it or stop it", dir, what,
                              holder(dir)));
    }
    throw Error(fmt::format("{}: cannot lock: {}", path, std::strerror(err)));
  }
  const std::string me = fmt::format("host {}, pid {}\n", host_name(), ::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The lock holds without the note; only the message naming the holder would be poorer.
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

bool FolderLock::is_held(const std::string& dir) {
  const int fd = ::open(lock_path(dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // A shared probe: it conflicts with the holder's exclusive lock, and needs no write access
  // (NFS emulates flock with fcntl locks, whose exclusive kind a read-only descriptor cannot take).
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the probe's lock if it got one
  return held;
}

std::string FolderLock::holder(const std::string& dir) {
  try {
    std::string text = read_file(lock_path(dir));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text.empty() ? "holder unknown" : text;
  } catch (const Error&) {
    return "holder unknown";
  }
}

}  // namespace tlm
