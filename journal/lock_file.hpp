// SPDX-License-Identifier: Apache-2.0
#pragma once
// The single-writer lock: an exclusive flock(2) on a file, held for the life of
// the object, with the holder's pid written in the file so that a process that
// is refused can name the holder. The kernel drops the lock when the holder
// exits, also on a crash, so a stale file never blocks a restart.

#include <filesystem>
#include <string>

namespace orbit {

class LockFile {
 public:
  // Takes the lock on `path` (created with mode 0600 when missing). Throws
  // std::runtime_error naming `what`, the file and, when another process holds it,
  // that process's pid.
  static LockFile acquire(const std::filesystem::path& path, const std::string& what);

  LockFile(LockFile&& other) noexcept;
  LockFile& operator=(LockFile&& other) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile();  // releases the lock; the file stays (removing it would race a new holder)

  const std::filesystem::path& path() const { return path_; }

 private:
  LockFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

}  // namespace orbit
