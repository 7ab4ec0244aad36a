// An advisory exclusive lock on a folder (run folders, experiment folders), held for the life of
// the object: flock(2) on <dir>/tlm.lock. The file is opened close-on-exec, so commands a holder
// forks do not inherit the lock; the holder writes its host and pid into it, since flock cannot
// say who holds a lock. A lock left by a dead process does not block: the kernel drops it.
#pragma once

#include <string>

namespace tlm {

class FolderLock {
 public:
  static constexpr const char* kFileName = "tlm.lock";

  // Takes the lock of `dir` (which must exist); throws naming the holder when another process
  // (or another lock in this one) has it. `what` names the folder in messages ("run", ...).
  FolderLock(const std::string& dir, const std::string& what);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  // Whether some process holds the lock of `dir` right now, and who wrote it ("host H, pid P").
  static bool is_held(const std::string& dir);
  static std::string holder(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace tlm
