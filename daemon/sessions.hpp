// SPDX-License-Identifier: Apache-2.0
#pragma once
// One session per (run, rank): who to send to (the ROUTER identity of the
// adapter's DEALER), when we last heard from it, and the session id of its welcome.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace orbit {

struct Session {
  std::string run;
  std::int64_t rank = 0;
  std::string id;                     // handed out in `welcome`
  std::vector<std::string> envelope;  // routing frames to reach the adapter
  double opened_at = 0.0;             // daemon time, Unix seconds
  double last_seen = 0.0;
  std::uint64_t snapshots = 0;
};

class SessionTable {
 public:
  using Key = std::pair<std::string, std::int64_t>;

  // Opens or replaces the session of (run, rank); a replaced session keeps nothing.
  Session& open(const std::string& run, std::int64_t rank, std::vector<std::string> envelope, double now);
  Session* find(const std::string& run, std::int64_t rank);
  bool close(const std::string& run, std::int64_t rank);
  // Removes and returns the sessions silent for longer than `timeout` seconds.
  std::vector<Session> expire(double now, double timeout);
  std::vector<Session*> of_run(const std::string& run);

  std::size_t size() const { return sessions_.size(); }
  const std::map<Key, Session>& all() const { return sessions_; }

 private:
  std::map<Key, Session> sessions_;
  std::uint64_t next_id_ = 1;
};

}  // namespace orbit
