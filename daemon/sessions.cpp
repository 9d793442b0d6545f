// SPDX-License-Identifier: Apache-2.0
#include "daemon/sessions.hpp"

#include <cstdio>

namespace orbit {

Session& SessionTable::open(const std::string& run, std::int64_t rank, std::vector<std::string> envelope, double now) {
  Session& s = sessions_[{run, rank}];
  s = Session{};
  s.run = run;
  s.rank = rank;
  char id[64];
  std::snprintf(id, sizeof id, "%s/%lld/%llu", run.substr(0, 32).c_str(), static_cast<long long>(rank),
                static_cast<unsigned long long>(next_id_++));
  s.id = id;
  s.envelope = std::move(envelope);
  s.opened_at = now;
  s.last_seen = now;
  return s;
}

bool Session::state_is_news(std::string_view state, std::string_view basin, bool forecast, bool spectra,
                            double now) const {
  if (!news_only || !told_any || spectra) return true;
  if (state != told_state || basin != told_basin || forecast != told_forecast) return true;
  return snapshots_untold + 1 >= kNewsRefreshSnapshots || now - told_at >= kNewsRefreshSeconds;
}

void Session::told(std::string_view state, std::string_view basin, bool forecast, double now) {
  told_any = true;
  told_state.assign(state);
  told_basin.assign(basin);
  told_forecast = forecast;
  told_at = now;
  snapshots_untold = 0;
}

Session* SessionTable::find(const std::string& run, std::int64_t rank) {
  auto it = sessions_.find({run, rank});
  return it == sessions_.end() ? nullptr : &it->second;
}

bool SessionTable::close(const std::string& run, std::int64_t rank) { return sessions_.erase({run, rank}) > 0; }

std::vector<Session> SessionTable::expire(double now, double timeout) {
  std::vector<Session> gone;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.last_seen > timeout) {
      gone.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

std::vector<Session*> SessionTable::of_run(const std::string& run) {
  std::vector<Session*> out;
  for (auto it = sessions_.lower_bound({run, 0}); it != sessions_.end() && it->first.first == run; ++it) {
    out.push_back(&it->second);
  }
  return out;
}

}  // namespace orbit
