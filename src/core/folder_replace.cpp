#include "tlm/folder_replace.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tlm/check.h"

namespace tlm {

namespace fs = std::filesystem;

namespace {

// An exclusive flock on the folder's own descriptor, released when destroyed. Not FolderLock: that
// one writes tlm.lock into the folder, which here is the user's (a home, an experiment folder whose
// own tlm.lock a running command may hold).
class FolderFlock {
 public:
  explicit FolderFlock(const fs::path& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ < 0) throw Error(fmt::format("{}: cannot open: {}", dir.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw Error(
          fmt::format("{}: another tlm command is replacing a folder here; try again when it ends", dir.string()));
    }
  }
  ~FolderFlock() { ::close(fd_); }
  FolderFlock(const FolderFlock&) = delete;
  FolderFlock& operator=(const FolderFlock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::vector<std::string> replace_folder(const fs::path& out, const std::function<void(const fs::path&)>& write) {
  TLM_CHECK(out.has_filename(), "{}: not a folder name", out.string());
  if (fs::is_symlink(out)) {
    throw Error(fmt::format("{}: a symbolic link; give the folder it points to", out.string()));
  }
  const fs::path parent = out.parent_path();
  fs::create_directories(parent);
  const FolderFlock lock(parent);
  const std::string name = out.filename().string();
  const fs::path staging = parent / ("." + name + ".tlm-staging"), old = parent / ("." + name + ".tlm-old");
  // Under the lock, these belong to a replacement that did not finish: its staging folder is
  // incomplete, and an earlier folder set aside goes back where the swap was cut.
  if (fs::exists(old)) {
    if (fs::exists(out)) {
      fs::remove_all(old);
    } else {
      fs::rename(old, out);
    }
  }
  fs::remove_all(staging);
  std::vector<std::string> warnings;
  try {
    fs::create_directories(staging);
    write(staging);
    if (!fs::exists(out)) {
      fs::rename(staging, out);
    } else if (renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) == 0) {
      std::error_code ec;
      fs::remove_all(staging, ec);  // now the earlier folder
      if (ec) warnings.push_back(fmt::format("{}: the earlier folder was left: {}", staging.string(), ec.message()));
    } else {
      // a file system without the exchange: set the earlier folder aside, put the new one in place
      fs::rename(out, old);
      try {
        fs::rename(staging, out);
      } catch (...) {
        fs::rename(old, out);
        throw;
      }
      std::error_code ec;
      fs::remove_all(old, ec);
      if (ec) warnings.push_back(fmt::format("{}: the earlier folder was left: {}", old.string(), ec.message()));
    }
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
  return warnings;
}

}  // namespace tlm
