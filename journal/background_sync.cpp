// SPDX-License-Identifier: Apache-2.0
#include "journal/background_sync.hpp"

#include <cerrno>
#include <cstring>

#include <unistd.h>

namespace orbit {

BackgroundSync::BackgroundSync() : worker_([this] { work(); }) {}

BackgroundSync::~BackgroundSync() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  worker_.join();
}

void BackgroundSync::submit(int fd, std::string file) {
  {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(fd, std::move(file));
  }
  wake_.notify_one();
}

void BackgroundSync::drain() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

std::string BackgroundSync::take_error() {
  std::lock_guard lock(mutex_);
  return std::exchange(error_, {});
}

void BackgroundSync::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything submitted is done
    auto [fd, file] = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    const int rc = ::fdatasync(fd);
    const int err = errno;
    ::close(fd);
    lock.lock();
    busy_ = false;
    if (rc != 0 && error_.empty()) error_ = "cannot sync " + file + ": " + std::strerror(err);
    if (queue_.empty()) idle_.notify_all();
  }
}

}  // namespace orbit
