// SPDX-License-Identifier: Apache-2.0
#include "tools/replay_serve.hpp"

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <cstdio>
#include <filesystem>

#include <boost/asio.hpp>

#include "config/endpoints.hpp"
#include "dashboard/dashboard_feed.hpp"
#include "dashboard/http_endpoint.hpp"

namespace orbit {

namespace {

// One replayed step as the daemon would have recorded it.
void feed_run(DashboardFeed& feed, const RunReplay& replay, const RecordedRun* recording) {
  std::map<std::int64_t, const ReplayedBurn*> burns;
  for (const auto& b : replay.burns) burns[b.burn.seq] = &b;
  for (const TimelinePoint& p : replay.timeline) {
    Snapshot s;
    s.run = replay.run;
    s.step = p.step;
    s.time = p.time;
    s.loss = p.loss;
    s.grad_norm = p.grad_norm;
    Decision d;
    d.state = p.state;
    d.basin = p.basin;
    d.forecast_basin = p.forecast_basin;
    d.basin_age_steps = p.basin_age_steps;
    d.lr_scale = p.lr_scale;
    d.metrics = p.metrics.to_map();
    d.events = p.events;
    d.step_closed = true;
    if (p.burn_seq)
      if (auto it = burns.find(*p.burn_seq); it != burns.end()) d.burn = it->second->burn;
    feed.record(s, d);
  }
  // The latest spectrum: the last recorded snapshot that carried one.
  if (recording) {
    for (auto it = recording->entries.rbegin(); it != recording->entries.rend(); ++it) {
      const auto* snapshot = std::get_if<Snapshot>(&it->value);
      if (snapshot && !snapshot->spectra.empty()) {
        feed.set_spectrum(*snapshot);
        break;
      }
    }
  }
  feed.set_live(replay.run, false);
}

}  // namespace

void serve_replays(const std::string& address, const std::string& source, const std::vector<const RunReplay*>& replays,
                   const std::vector<const RecordedRun*>& recordings) {
  if (!loopback_host(parse_http_address(address).first))
    throw std::runtime_error("--serve " + address +
                             ": serve on a loopback address (127.0.0.1:PORT); the page has no "
                             "authentication");
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  DashboardFeed::Options options;
  options.web_root = find_web_root(ec ? std::string() : exe.parent_path().string(), ORBIT_WEB_DEV_DIR);
  options.source = source;
  options.max_runs = std::max<std::size_t>(options.max_runs, replays.size());
  options.points_per_run = 0;  // a finished run is shown whole
  for (const RunReplay* r : replays) options.points_per_run = std::max(options.points_per_run, r->timeline.size());
  DashboardFeed feed(options);
  if (!replays.empty()) feed.set_zones(replays.front()->config);
  for (std::size_t i = 0; i < replays.size(); ++i)
    feed_run(feed, *replays[i], i < recordings.size() ? recordings[i] : nullptr);
  if (options.web_root.empty())
    std::fprintf(stderr, "orbit replay: the dashboard's files were not found (npm ci in web/, or ORBIT_WEB_ROOT)\n");

  boost::asio::io_context io;
  HttpEndpoint http(io, [&feed](std::string_view method, std::string_view target) -> HttpEndpoint::Response {
    if (method != "GET") return {405, "text/plain; charset=utf-8", "only GET is served\n"};
    if (auto r = feed.handle(target.substr(0, target.find('?')))) return std::move(*r);
    return {404, "text/plain; charset=utf-8", "not found; this serves the dashboard at / and /api/\n"};
  });
  http.listen(address);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    http.close();
    io.stop();
  });
  std::printf("serving %s (%zu runs from %s); Ctrl-C stops\n", http.url().c_str(), replays.size(), source.c_str());
  std::fflush(stdout);
  io.run();
}

}  // namespace orbit
