// SPDX-License-Identifier: Apache-2.0
#pragma once
// fdatasync off the caller's thread. Under the `interval` policy the journal hands
// each dirty segment file (a dup of its descriptor) to one worker thread, so the
// event loop that appends never waits on the disk; failures come back to the
// caller on its next call.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace orbit {

class BackgroundSync {
 public:
  BackgroundSync();
  ~BackgroundSync();  // syncs what was submitted, then stops the worker
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Takes ownership of `fd` (a dup of a segment's descriptor): the worker syncs
  // and closes it. `file` names it in an error.
  void submit(int fd, std::string file);
  // Returns once every file submitted so far is synced (or failed).
  void drain();
  // The first failure since the last call, "" when none: "cannot sync FILE: reason".
  std::string take_error();

 private:
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::pair<int, std::string>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::string error_;
  std::thread worker_;  // last: started once everything above exists
};

}  // namespace orbit
