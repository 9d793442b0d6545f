// SPDX-License-Identifier: Apache-2.0
#pragma once
// One session per (run, rank): who to send to (the ROUTER identity of the
// adapter's DEALER), when we last heard from it, and the session id of its welcome.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orbit {

// A news-only session (hello.replies "news") gets a `state` reply at least every this
// many snapshots and whenever this many seconds passed since the last reply with a
// state, news or not: metrics stay fresh and the adapter's liveness clock (a reply
// within 30 s) keeps running while snapshots come (SPEC.md 3).
inline constexpr std::uint64_t kNewsRefreshSnapshots = 10;
inline constexpr double kNewsRefreshSeconds = 5.0;

struct Session {
  std::string run;
  std::int64_t rank = 0;
  std::string id;                     // handed out in `welcome`
  std::vector<std::string> envelope;  // routing frames to reach the adapter
  double opened_at = 0.0;             // daemon time, Unix seconds
  double last_seen = 0.0;
  std::uint64_t snapshots = 0;
  // hello.replies "news": a snapshot whose `state` reply says nothing new gets none.
  bool news_only = false;
  // What the latest reply carrying a state (a `state` or a `burn`) told the adapter.
  bool told_any = false;
  std::string told_state, told_basin;
  bool told_forecast = false;          // whether it held a forecast (steps_to_danger)
  double told_at = 0.0;                // daemon time it went out
  std::uint64_t snapshots_untold = 0;  // snapshots since then that got no reply

  // Whether the `state` reply to a snapshot is news for this session: always without
  // news_only; else a changed state, basin or forecast, a snapshot with spectra (new
  // spectral metrics), or a refresh that is due.
  bool state_is_news(std::string_view state, std::string_view basin, bool forecast, bool spectra, double now) const;
  // Records a reply that carried `state` and `basin` (sent at daemon time `now`).
  void told(std::string_view state, std::string_view basin, bool forecast, double now);
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
