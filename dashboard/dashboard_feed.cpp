// SPDX-License-Identifier: Apache-2.0
#include "dashboard/dashboard_feed.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "protocol/json_writer.hpp"

namespace orbit {
namespace {

constexpr std::size_t kSpectrumValues = 1024;  // the bar chart's largest spectrum (the head holds the story)

const char* const kText = "text/plain; charset=utf-8";

// The hidden-state spectrum if there is one (what the aggregate reads by default), else the first.
std::string spectrum_json(const Snapshot& s) {
  if (s.spectra.empty()) return {};
  auto it = std::find_if(s.spectra.begin(), s.spectra.end(),
                         [](const auto& kv) { return kv.first.rfind("hidden", 0) == 0; });
  if (it == s.spectra.end()) it = s.spectra.begin();
  std::vector<float> values(it->second.begin(), it->second.end());
  for (float& v : values) v = std::abs(v);
  std::sort(values.begin(), values.end(), [](float a, float b) { return a > b; });  // λ1 ≥ λ2 ≥ ...
  JsonWriter w;
  w.begin_object();
  w.field("run", s.run)
      .field("step", s.step)
      .field("name", it->first)
      .field("size", static_cast<std::int64_t>(values.size()));
  w.key("values").begin_array();
  for (std::size_t i = 0; i < values.size() && i < kSpectrumValues; ++i) w.value(static_cast<double>(values[i]));
  w.end_array();
  w.end_object();
  return w.take();
}

std::string summary_json(const Snapshot& s, const Decision& d) {
  JsonWriter w;
  w.begin_object();
  w.field("step", s.step).field("state", d.state).field("basin", d.basin).field("forecast_basin", d.forecast_basin);
  if (d.basin_age_steps) w.field("basin_age_steps", *d.basin_age_steps);
  w.field("lr_scale", d.lr_scale);
  const bool spectral = d.metrics.count("entropy") || d.metrics.count("effective_rank");
  w.field("spectral", spectral);
  w.end_object();
  return w.take();
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

DashboardFeed::DashboardFeed(Options options) : options_(std::move(options)), names_(std::make_shared<PointNames>()) {}

void DashboardFeed::set_zones(const NavigatorConfig& config) {
  JsonWriter w;
  w.begin_object();
  for (const auto& [metric, zone] : config.zones) {
    w.key(metric).begin_object();
    w.field("good", zone.band.good).field("danger", zone.band.danger).field("alarm", zone.alarm);
    w.end_object();
  }
  w.end_object();
  zones_json_ = w.take();
}

void DashboardFeed::record(const Snapshot& snapshot, const Decision& decision) {
  auto it = runs_.find(snapshot.run);
  if (it == runs_.end()) {
    evict_runs(options_.max_runs > 0 ? options_.max_runs - 1 : 0);
    it = runs_.try_emplace(snapshot.run, names_).first;
  }
  RunFeed& run = it->second;
  run.updated = ++clock_;
  run.live = true;
  ++counters_.points;
  if (decision.burn) ++run.burns;
  run.summary = summary_json(snapshot, decision);
  if (!streams_.empty()) push(snapshot.run, sse_event("point", point_json(snapshot, decision)));
  while (options_.points_per_run > 0 && run.points.size() >= options_.points_per_run) run.points.pop_front();
  run.points.push(snapshot, decision);
  if (!snapshot.spectra.empty()) {
    run.spectrum = spectrum_json(snapshot);
    if (!streams_.empty()) push(snapshot.run, sse_event("spectrum", run.spectrum));
  }
}

void DashboardFeed::evict_runs(std::size_t keep) {
  while (runs_.size() > keep) {
    auto oldest = std::min_element(runs_.begin(), runs_.end(),
                                   [](const auto& a, const auto& b) { return a.second.updated < b.second.updated; });
    runs_.erase(oldest);
  }
}

void DashboardFeed::set_limits(std::size_t points_per_run, std::size_t max_runs) {
  options_.points_per_run = points_per_run;
  options_.max_runs = max_runs;
  evict_runs(max_runs);
  if (points_per_run == 0) return;
  for (auto& [name, run] : runs_)
    while (run.points.size() > points_per_run) run.points.pop_front();
}

void DashboardFeed::set_spectrum(const Snapshot& snapshot) {
  if (auto it = runs_.find(snapshot.run); it != runs_.end()) it->second.spectrum = spectrum_json(snapshot);
}

void DashboardFeed::set_live(const std::string& run, bool live) {
  if (auto it = runs_.find(run); it != runs_.end()) it->second.live = live;
}

void DashboardFeed::push(const std::string& run, const std::string& event) {
  const std::string want = "run=" + run;
  std::erase_if(streams_, [&](const std::shared_ptr<EventStream>& s) {
    if (s->closed()) return true;
    const std::string& q = s->query();
    if (!q.empty() && q != want) return false;
    const std::uint64_t dropped_before = s->dropped();
    // A copy per stream: each connection writes its own queue at its own pace.
    if (!s->push(event)) return true;
    ++counters_.events_pushed;
    counters_.events_dropped += s->dropped() - dropped_before;
    return false;
  });
  counters_.streams_open = streams_.size();
}

std::string DashboardFeed::runs_json() const {
  std::string out = "{\"runs\":[";
  bool first = true;
  for (const auto& [name, run] : runs_) {
    if (!first) out += ',';
    first = false;
    out += "{\"run\":";
    append_json_string(out, name);
    out += ",\"points\":" + std::to_string(run.points.size()) + ",\"burns\":" + std::to_string(run.burns) +
           ",\"live\":" + (run.live ? "true" : "false") + ",\"last\":" + (run.summary.empty() ? "null" : run.summary) +
           "}";
  }
  out += "]}\n";
  return out;
}

std::optional<HttpEndpoint::Response> DashboardFeed::handle(std::string_view path) {
  if (path == "/api/runs") return HttpEndpoint::Response{200, "application/json", runs_json()};
  if (path == "/api/config") {
    std::string out = "{\"source\":";
    append_json_string(out, options_.source);
    return HttpEndpoint::Response{200, "application/json", out + ",\"zones\":" + zones_json_ + "}\n"};
  }
  if (path == "/api/events") {
    std::string runs = runs_json();
    runs.pop_back();  // the newline: an event's data is one line
    HttpEndpoint::Response r{200, "text/event-stream", sse_event("runs", runs)};
    r.stream = [this](std::shared_ptr<EventStream> s) {
      streams_.push_back(std::move(s));
      counters_.streams_open = streams_.size();
    };
    return r;
  }
  constexpr std::string_view runs_prefix = "/api/runs/", history_suffix = "/history";
  if (path.substr(0, runs_prefix.size()) == runs_prefix && path.size() > runs_prefix.size() + history_suffix.size() &&
      path.substr(path.size() - history_suffix.size()) == history_suffix) {
    const std::string name(path.substr(runs_prefix.size(), path.size() - runs_prefix.size() - history_suffix.size()));
    auto it = runs_.find(name);
    if (it == runs_.end()) return HttpEndpoint::Response{404, kText, "no run '" + name + "' on this dashboard\n"};
    const RunFeed& run = it->second;
    std::string out = "{\"run\":";
    append_json_string(out, name);
    out += ",\"spectrum\":" + (run.spectrum.empty() ? std::string("null") : run.spectrum) + ",\"points\":[";
    out.reserve(out.size() + run.points.size() * 700);
    run.points.append_json(out);
    out += "]}\n";
    return HttpEndpoint::Response{200, "application/json", std::move(out)};
  }
  return static_file(path);
}

std::optional<HttpEndpoint::Response> DashboardFeed::static_file(std::string_view path) const {
  struct File {
    std::string_view path;
    std::vector<std::string_view> candidates;  // relative to the web root, first found wins
    std::string_view type;
  };
  static const File files[] = {
      {"/", {"index.html"}, "text/html; charset=utf-8"},
      {"/index.html", {"index.html"}, "text/html; charset=utf-8"},
      {"/app.js", {"app.js"}, "text/javascript; charset=utf-8"},
      {"/app.css", {"app.css"}, "text/css; charset=utf-8"},
      // Installed under vendor/; in the source tree where npm ci put them.
      {"/uPlot.iife.min.js",
       {"vendor/uPlot.iife.min.js", "node_modules/uplot/dist/uPlot.iife.min.js"},
       "text/javascript; charset=utf-8"},
      {"/uPlot.min.css", {"vendor/uPlot.min.css", "node_modules/uplot/dist/uPlot.min.css"}, "text/css; charset=utf-8"},
  };
  for (const File& f : files) {
    if (f.path != path) continue;
    if (!options_.web_root.empty()) {
      for (auto c : f.candidates) {
        const auto p = std::filesystem::path(options_.web_root) / c;
        std::error_code ec;
        if (std::filesystem::is_regular_file(p, ec))
          return HttpEndpoint::Response{200, std::string(f.type), read_file(p)};
      }
    }
    return HttpEndpoint::Response{404, kText,
                                  "the dashboard's files are not installed (" + std::string(f.candidates.back()) +
                                      " not found under '" + options_.web_root +
                                      "'); run `npm ci` in web/ (scripts/deps does), or set ORBIT_WEB_ROOT\n"};
  }
  return std::nullopt;
}

std::string find_web_root(const std::string& exe_dir, const std::string& dev_web_dir) {
  auto has_page = [](const std::filesystem::path& dir) {
    std::error_code ec;
    return std::filesystem::is_regular_file(dir / "index.html", ec);
  };
  if (const char* env = std::getenv("ORBIT_WEB_ROOT"); env && *env) return env;
  if (!exe_dir.empty()) {
    const auto installed = std::filesystem::path(exe_dir) / ".." / "share" / "orbit" / "web";
    if (has_page(installed)) return std::filesystem::weakly_canonical(installed).string();
  }
  if (!dev_web_dir.empty() && has_page(dev_web_dir)) return dev_web_dir;
  return {};
}

}  // namespace orbit
