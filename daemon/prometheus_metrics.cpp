// SPDX-License-Identifier: Apache-2.0
// GET /metrics: orbitd's counters and every run's state in the Prometheus text
// format, built with prometheus-cpp's core (a Registry filled at each scrape, then
// its TextSerializer). Naming follows Prometheus practice: counters end in
// `_total`, one metric per quantity, labels tell series apart (error `code`, `run`,
// `spectrum`, ...), and a `signal` label only among values of one unit. Per-run
// health metrics are the last value each one had (Run::held_metrics): spectral
// metrics come on probe steps only and stay on the scrapes between them.
#include <array>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "daemon/server.hpp"

namespace orbit {
namespace {

using prometheus::Labels;

constexpr std::array<OrbitState, 7> kStates = {OrbitState::stable,     OrbitState::drifting, OrbitState::warning,
                                               OrbitState::critical,   OrbitState::recovering, OrbitState::stale,
                                               OrbitState::monitor};

// Where one health metric (protocol/SPEC.md 5.4.1) goes: its family and the labels
// beyond `run`.
struct HealthSeries {
  std::string_view family;
  Labels labels;
};

struct HealthFamily {
  std::string_view name, help;
};

// The per-run health families, one per quantity.
constexpr HealthFamily kHealthFamilies[] = {
    {"orbit_run_spectral_entropy_nats",
     "Spectral entropy H = -sum p ln p of each spectrum (spectrum=\"aggregate\": over signals.spectra)."},
    {"orbit_run_spectral_effective_rank", "Effective rank exp(H) of each spectrum."},
    {"orbit_run_spectral_normalized_entropy", "Entropy over ln(n) of each spectrum, in [0, 1]."},
    {"orbit_run_spectral_dominant_ratio", "Share of the largest eigenvalue of each spectrum, in [0, 1]."},
    {"orbit_run_spectral_phi_proximity", "Closeness of the top eigenvalue ratio to the golden ratio, in [0, 1]."},
    {"orbit_run_loss", "The run's loss: the last reported (statistic=\"last\") and its running mean (\"ewma\")."},
    {"orbit_run_domain_loss", "Loss per data domain."},
    {"orbit_run_zscore", "Robust z-scores of the run's signals (loss, ln grad norm), in standard deviations."},
    {"orbit_run_grad_norm", "Gradient norm the run last reported."},
    {"orbit_run_loss_jump_ratio", "Loss over its running floor (loss-jump detector)."},
    {"orbit_run_loop_rate", "Share of the sampled generation that repeats itself, in [0, 1]."},
    {"orbit_run_health", "The run's health: 1 on the good line of its worst metric, 0 on the danger line."},
    {"orbit_run_signature_held_steps", "Early training: steps a collapse signature has held before it counts."},
    {"orbit_run_unclassified_metric", "Metrics this orbitd does not map to a family of their own (units vary by name)."},
};

constexpr std::string_view kSpectralSuffixes[] = {"entropy", "effective_rank", "normalized_entropy", "dominant_ratio",
                                                 "phi_proximity"};
constexpr std::string_view kSpectralFamilies[] = {"orbit_run_spectral_entropy_nats", "orbit_run_spectral_effective_rank",
                                                 "orbit_run_spectral_normalized_entropy",
                                                 "orbit_run_spectral_dominant_ratio", "orbit_run_spectral_phi_proximity"};

// nullopt: the metric is exported elsewhere (lr_scale is orbit_run_lr_scale).
std::optional<HealthSeries> health_series(const std::string& name) {
  for (std::size_t i = 0; i < std::size(kSpectralSuffixes); ++i) {
    const std::string_view suffix = kSpectralSuffixes[i];
    if (name == suffix) return HealthSeries{kSpectralFamilies[i], {{"spectrum", "aggregate"}}};
    if (name.size() > suffix.size() + 1 && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '.')
      return HealthSeries{kSpectralFamilies[i], {{"spectrum", name.substr(0, name.size() - suffix.size() - 1)}}};
  }
  if (name == "loss") return HealthSeries{"orbit_run_loss", {{"statistic", "last"}}};
  if (name == "loss_ewma") return HealthSeries{"orbit_run_loss", {{"statistic", "ewma"}}};
  if (name == "loss_z") return HealthSeries{"orbit_run_zscore", {{"signal", "loss"}}};
  if (name == "grad_norm_z") return HealthSeries{"orbit_run_zscore", {{"signal", "grad_norm"}}};
  if (name == "grad_norm") return HealthSeries{"orbit_run_grad_norm", {}};
  if (name == "loss_jump") return HealthSeries{"orbit_run_loss_jump_ratio", {}};
  if (name == "loop_rate") return HealthSeries{"orbit_run_loop_rate", {}};
  if (name == "health") return HealthSeries{"orbit_run_health", {}};
  // A forecast from this step's trends, exported from the last decision only
  // (orbit_run_steps_to_danger): held between probes it would read as current.
  if (name == "steps_to_danger") return std::nullopt;
  if (name == "signature_held_steps") return HealthSeries{"orbit_run_signature_held_steps", {}};
  if (name == "lr_scale") return std::nullopt;
  constexpr std::string_view domain = "domain.", loss = ".loss";
  if (name.size() > domain.size() + loss.size() && name.starts_with(domain) && name.ends_with(loss))
    return HealthSeries{"orbit_run_domain_loss",
                        {{"domain", name.substr(domain.size(), name.size() - domain.size() - loss.size())}}};
  return HealthSeries{"orbit_run_unclassified_metric", {{"metric", name}}};
}

}  // namespace

std::string Server::prometheus_metrics() {
  if (http_) {
    stats_.http_rejected = http_->counters().rejected;
    stats_.http_unauthorized = http_->counters().unauthorized;
  }
  prometheus::Registry registry;
  auto gauge = [&](const std::string& name, const std::string& help) -> prometheus::Family<prometheus::Gauge>& {
    return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
  };
  auto counter = [&](const std::string& name, const std::string& help) -> prometheus::Family<prometheus::Counter>& {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
  };

  gauge("orbitd_info", "orbitd version and the mode of new runs.")
      .Add({{"version", ORBIT_VERSION}, {"mode", config_.mode}})
      .Set(1);
  gauge("orbitd_uptime_seconds", "Seconds since orbitd started serving.").Add({}).Set(clock_.now() - started_at_);

  // Registry::Register hands back the family already registered under a name, so
  // counters that share a family land in it as labelled series.
  stats_.for_each_export([&](const char*, std::uint64_t value, const StatExport& e) {
    auto& family = counter(e.family, stat_family_help(e.family));
    Labels labels;
    if (*e.label_name) labels.emplace(e.label_name, e.label_value);
    family.Add(labels).Increment(static_cast<double>(value));
  });
  gauge("orbitd_sessions_active", "Open (run, rank) sessions.").Add({}).Set(static_cast<double>(sessions_.size()));
  gauge("orbitd_runs_active", "Runs with a controller.").Add({}).Set(static_cast<double>(runs_.size()));
  if (dashboard_) {
    gauge("orbitd_dashboard_streams", "Dashboard event streams (browsers) attached.")
        .Add({})
        .Set(static_cast<double>(dashboard_->streams()));
    counter("orbitd_dashboard_events_dropped_total", "Dashboard events dropped from full per-client queues (slow browsers).")
        .Add({})
        .Increment(static_cast<double>(dashboard_->counters().events_dropped));
  }

  auto& step = gauge("orbit_run_step", "Last step the run reported.");
  auto& lr_scale = gauge("orbit_run_lr_scale", "lr scale in force from the run's last decision.");
  auto& burns = counter("orbit_run_burns_total", "Burns decided or forced for the run (its last burn seq).");
  auto& state = gauge("orbit_run_state", "1 for the run's orbit state, 0 for the others.");
  for (const auto& [name, run] : runs_) {
    step.Add({{"run", name}}).Set(static_cast<double>(run.last_step));
    lr_scale.Add({{"run", name}}).Set(run.last.lr_scale);
    burns.Add({{"run", name}}).Increment(static_cast<double>(run.navigator->last_seq()));
    const std::string current = run.last.state.empty() ? std::string(to_string(run.navigator->state())) : run.last.state;
    for (OrbitState s : kStates)
      state.Add({{"run", name}, {"state", std::string(to_string(s))}}).Set(current == to_string(s) ? 1.0 : 0.0);
  }

  // Families are registered up front so their order (and HELP) does not depend on
  // which metrics the first run happens to have.
  std::map<std::string_view, prometheus::Family<prometheus::Gauge>*> health;
  for (const HealthFamily& f : kHealthFamilies) health[f.name] = &gauge(std::string(f.name), std::string(f.help));
  for (const auto& [name, run] : runs_)
    for (const auto& [metric, value] : run.held_metrics)
      if (auto series = health_series(metric)) {
        series->labels.emplace("run", name);
        health.at(series->family)->Add(series->labels).Set(value);
      }
  // The forecast is the last decided step's only, never held: a step whose trends
  // point at no danger line leaves the run without a sample.
  auto& forecast = gauge("orbit_run_steps_to_danger",
                         "Forecast from the run's last decided step: steps until the first alarm metric's trend "
                         "reaches its danger line (no sample when none is heading there).");
  for (const auto& [name, run] : runs_)
    if (auto it = run.last.metrics.find("steps_to_danger"); it != run.last.metrics.end())
      forecast.Add({{"run", name}}).Set(it->second);
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace orbit
