// SPDX-License-Identifier: Apache-2.0
#pragma once
// One Server-Sent Events client's outgoing queue. The loop pushes events; the
// connection writes them as fast as the client reads. The queue is bounded: when
// it is full the oldest event is dropped and counted, so a slow browser costs
// its own events and never the loop that pushes them.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

namespace orbit {

class EventStream {
 public:
  explicit EventStream(std::size_t max_queued) : max_queued_(max_queued == 0 ? 1 : max_queued) {}

  // Queues one event (already framed as "event: ...\ndata: ...\n\n"). Returns
  // false once the client is gone, so the publisher can forget the stream.
  bool push(std::string event) {
    if (closed_) return false;
    if (queue_.size() >= max_queued_) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(std::move(event));
    if (wake_) wake_();
    return true;
  }

  bool closed() const { return closed_; }
  std::uint64_t dropped() const { return dropped_; }
  std::size_t queued() const { return queue_.size(); }
  // What the client asked for in the query (e.g. "run=a"), for the publisher's filter.
  const std::string& query() const { return query_; }

  // For the connection that writes the stream.
  void set_query(std::string q) { query_ = std::move(q); }
  void set_wake(std::function<void()> wake) { wake_ = std::move(wake); }
  std::deque<std::string>& queue() { return queue_; }
  void close() {
    closed_ = true;
    wake_ = nullptr;
    queue_.clear();
  }

 private:
  std::size_t max_queued_;
  std::deque<std::string> queue_;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  std::function<void()> wake_;
  std::string query_;
};

// "event: NAME\ndata: JSON\n\n" (JSON has no raw newlines, so one data line).
inline std::string sse_event(std::string_view name, std::string_view json) {
  std::string out;
  out.reserve(name.size() + json.size() + 16);
  out.append("event: ").append(name).append("\ndata: ").append(json).append("\n\n");
  return out;
}

}  // namespace orbit
