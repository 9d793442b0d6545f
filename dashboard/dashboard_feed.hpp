// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the dashboard page reads, kept on the loop that decides: per run a bounded
// history of decided steps (compact records, JSON written on request: see
// dashboard/point_history.hpp), the latest spectrum, and the
// Server-Sent Events streams watching it. orbitd feeds it live; `orbit replay
// --serve` feeds it a finished journal. It answers the page's routes:
//   GET /                      the page (web/index.html), GET /app.js, /app.css, /uPlot.*
//   GET /api/runs              runs list (JSON)
//   GET /api/runs/NAME/history every kept point of one run, its latest spectrum (JSON)
//   GET /api/config            the zone bands drawn behind the metric charts (JSON)
//   GET /api/events[?run=NAME] live points, burns and spectra (text/event-stream)

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/navigator.hpp"
#include "controllers/navigator_config.hpp"
#include "dashboard/event_stream.hpp"
#include "dashboard/http_endpoint.hpp"
#include "dashboard/point_history.hpp"
#include "protocol/messages.hpp"

namespace orbit {

class DashboardFeed {
 public:
  struct Options {
    std::size_t points_per_run = 20000;    // older points leave the history (0: keep all); [dashboard] history_steps
    std::size_t max_runs = 16;             // the least recently updated run leaves first; [dashboard] max_runs
    std::string web_root;                  // the page's files; "" or missing: / says how to get them
    std::string source = "orbitd (live)";  // what the page's header says it shows
  };
  struct Counters {
    std::uint64_t points = 0;          // decided steps recorded
    std::uint64_t events_pushed = 0;   // events queued to streams
    std::uint64_t events_dropped = 0;  // dropped from full stream queues (slow clients)
    std::uint64_t streams_open = 0;    // streams attached now (as of the last push)
  };

  explicit DashboardFeed(Options options);

  // The zone bands the page draws (from the navigator config in force).
  void set_zones(const NavigatorConfig& config);
  // One decided step of `snapshot.run` (call only when decision.step_closed): kept
  // in its history and pushed to every stream watching the run.
  void record(const Snapshot& snapshot, const Decision& decision);
  // The latest spectrum of `snapshot.run` (a replay sets it from the recording).
  void set_spectrum(const Snapshot& snapshot);
  // New history limits (a config reload): histories and runs past them are trimmed now.
  void set_limits(std::size_t points_per_run, std::size_t max_runs);
  // The run's mode/liveness as the runs list shows it.
  void set_live(const std::string& run, bool live);

  // The page's routes; nullopt for any other path (the caller answers those).
  std::optional<HttpEndpoint::Response> handle(std::string_view path);

  const Counters& counters() const { return counters_; }
  std::size_t streams() const { return streams_.size(); }

 private:
  struct RunFeed {
    explicit RunFeed(std::shared_ptr<PointNames> names) : points(std::move(names)) {}
    PointHistory points;   // oldest first
    std::string spectrum;  // the latest spectrum as JSON ("" until one came)
    std::string summary;   // JSON fields for the runs list, from the last point
    std::uint64_t burns = 0;
    std::uint64_t updated = 0;  // recording order, for eviction
    bool live = true;
  };

  void push(const std::string& run, const std::string& event);
  void evict_runs(std::size_t keep);
  std::string runs_json() const;
  std::optional<HttpEndpoint::Response> static_file(std::string_view path) const;

  Options options_;
  Counters counters_;
  std::string zones_json_ = "{}";
  std::shared_ptr<PointNames> names_;  // state, basin and metric names the runs' histories share
  std::map<std::string, RunFeed> runs_;
  std::uint64_t clock_ = 0;
  std::vector<std::shared_ptr<EventStream>> streams_;
};

// Where the page's files are: $ORBIT_WEB_ROOT, else share/orbit/web beside an
// installed binary (`exe_dir`/../share/orbit/web), else `dev_web_dir` (the
// build tree in development). "" when none holds index.html.
std::string find_web_root(const std::string& exe_dir, const std::string& dev_web_dir);

}  // namespace orbit
