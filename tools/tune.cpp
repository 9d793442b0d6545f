// SPDX-License-Identifier: Apache-2.0
#include "tools/tune.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <Eigen/Core>
#include <toml++/toml.h>

#include "controllers/plant_model.hpp"
#include "config/config_error.hpp"
#include "config/toml_table.hpp"

namespace orbit {

namespace fs = std::filesystem;

double TuneParam::value_at(double unit) const {
  const double u = std::clamp(unit, 0.0, 1.0);
  double v = log ? std::exp(std::log(min) + u * (std::log(max) - std::log(min))) : min + u * (max - min);
  if (integer) v = std::round(v);
  return std::clamp(v, min, max);
}

double TuneParam::unit_of(double value) const {
  const double v = std::clamp(value, min, max);
  const double u = log ? (std::log(v) - std::log(min)) / (std::log(max) - std::log(min)) : (v - min) / (max - min);
  return std::clamp(u, 0.0, 1.0);
}

std::vector<TuneParam> load_space(const fs::path& file) {
  const std::string name = file.string();
  // Read through the project's one TOML reader so a misspelt key is an error naming
  // the file, the key and the reason, not a silently ignored line.
  try {
    const toml::table t = load_toml_file(name);
    TomlTable top(&t, "", name);
    const toml::array* arr = top.tables("param");
    top.done();
    if (!arr || arr->empty()) top.fail("param", "no [[param]] tables");
    constexpr double kAny = std::numeric_limits<double>::max();
    std::vector<TuneParam> out;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      TomlTable p((*arr)[i].as_table(), "param[" + std::to_string(i) + "]", name);
      TuneParam q;
      double lo = std::numeric_limits<double>::quiet_NaN(), hi = lo;
      p.string("key", q.key);
      p.number("min", lo, -kAny, kAny);
      p.number("max", hi, -kAny, kAny);
      p.boolean("log", q.log);
      p.boolean("integer", q.integer);
      p.done();
      if (q.key.empty()) p.fail("key", "is required (a config key, as for `orbit replay --set`)");
      if (std::isnan(lo)) p.fail("min", "is required (a number)");
      if (std::isnan(hi)) p.fail("max", "is required (a number)");
      if (!(lo < hi)) p.fail("max", "must be greater than min (" + q.key + ")");
      if (q.log && lo <= 0) p.fail("min", "must be > 0 when log = true (" + q.key + ")");
      for (const auto& other : out)
        if (full_config_key(other.key) == full_config_key(q.key)) p.fail("key", "'" + q.key + "' is listed twice");
      q.min = lo;
      q.max = hi;
      out.push_back(std::move(q));
    }
    return out;
  } catch (const ConfigError& e) {
    throw SpaceError(e.what());
  }
}

Overrides candidate_overrides(const std::vector<TuneParam>& params, const std::vector<double>& values) {
  Overrides o;
  for (std::size_t i = 0; i < params.size(); ++i) {
    char buf[64];
    if (params[i].integer) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(std::llround(values[i])));
    else std::snprintf(buf, sizeof buf, "%.6g", values[i]);
    std::string text = buf;
    // TOML floats need a '.' or an exponent; "2" would be an integer.
    if (!params[i].integer && text.find_first_of(".eEn") == std::string::npos) text += ".0";
    o.emplace_back(params[i].key, text);
  }
  return o;
}

std::string toml_snippet(const std::vector<TuneParam>& params, const std::vector<double>& values) {
  const Overrides o = candidate_overrides(params, values);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> tables;
  std::vector<std::string> order;
  for (const auto& [key, value] : o) {
    const std::string full = full_config_key(key);
    const auto dot = full.rfind('.');
    const std::string table = full.substr(0, dot), leaf = full.substr(dot + 1);
    if (!tables.count(table)) order.push_back(table);
    tables[table].emplace_back(leaf, value);
  }
  std::string s;
  for (const auto& t : order) {
    s += (s.empty() ? "" : "\n") + std::string("[") + t + "]\n";
    for (const auto& [k, v] : tables[t]) s += k + " = " + v + "\n";
  }
  return s;
}

namespace {

// FNV-1a 64 over the seed's bytes then the name: a split that is the same on every
// platform and standard library (std::hash is neither).
std::uint64_t split_hash(std::uint64_t seed, const std::string& name) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](unsigned char byte) {
    h ^= byte;
    h *= 1099511628211ull;
  };
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : name) mix(static_cast<unsigned char>(c));
  return h;
}

}  // namespace

RunSplit split_runs(const std::vector<TuneRun>& runs, double held_out_fraction, std::uint64_t seed) {
  RunSplit split;
  std::vector<std::size_t> healthy, failing;
  for (std::size_t i = 0; i < runs.size(); ++i) (runs[i].failures.empty() ? healthy : failing).push_back(i);
  for (auto* group : {&healthy, &failing}) {
    std::stable_sort(group->begin(), group->end(), [&](std::size_t a, std::size_t b) {
      return split_hash(seed, runs[a].recording.run) < split_hash(seed, runs[b].recording.run);
    });
    std::size_t k = 0;
    if (held_out_fraction > 0 && group->size() >= 2) {
      const auto wanted = static_cast<std::size_t>(std::llround(held_out_fraction * static_cast<double>(group->size())));
      k = std::clamp<std::size_t>(wanted, 1, group->size() - 1);  // each kind keeps a tuning run
    }
    split.held_out.insert(split.held_out.end(), group->begin(), group->begin() + static_cast<std::ptrdiff_t>(k));
    split.tuning.insert(split.tuning.end(), group->begin() + static_cast<std::ptrdiff_t>(k), group->end());
  }
  std::sort(split.tuning.begin(), split.tuning.end());
  std::sort(split.held_out.begin(), split.held_out.end());
  return split;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double open_loop_cost(const Scoring& s, std::size_t snapshots, std::size_t window, RunScore& score) {
  double cost = 0;
  for (const auto& d : s.detections) {
    if (!d.first_alarm) {
      cost += 1.0;
    } else if (d.in_time()) {
      cost += 0.5 / (1.0 + static_cast<double>(d.lead_snapshots));
      score.leads.push_back(*d.lead);
    } else {
      const double late = static_cast<double>(-d.lead_snapshots);
      cost += 0.6 + 0.4 * std::min(1.0, late / static_cast<double>(std::max<std::size_t>(window, 1)));
      score.leads.push_back(*d.lead);
    }
  }
  cost += static_cast<double>(s.false_alarms);
  if (snapshots) cost += 2.0 * static_cast<double>(s.alarm_snapshots_outside) / static_cast<double>(snapshots);
  return cost;
}

// The plant of one run for the closed-loop objective.
struct PlantRun {
  bool ok = false;
  std::string why;
  PlantModel model;
  std::vector<const Snapshot*> snapshots;
  std::vector<double> u, residual, ref;
  double y0 = 0;
  RunInfo info;
};

PlantRun fit_run(const TuneRun& run) {
  PlantRun p;
  const RecordedRun& rec = run.recording;
  std::vector<const Burn*> burns;
  for (const auto& e : rec.entries) {
    if (e.type == RecordType::hello && p.info.run.empty()) {
      const auto& h = std::get<Hello>(e.value);
      p.info = RunInfo{h.run, 1, h.domains, h.actuators, h.base_lr};
    } else if (e.type == RecordType::snapshot) {
      const auto& s = std::get<Snapshot>(e.value);
      if (s.rank == 0) p.snapshots.push_back(&s);
    } else if (e.type == RecordType::burn) {
      burns.push_back(&std::get<Burn>(e.value));
    }
  }
  if (p.info.run.empty()) p.info = RunInfo{rec.run, 1, {}, {"lr"}, std::nullopt};
  if (std::find(p.info.actuators.begin(), p.info.actuators.end(), "lr") == p.info.actuators.end())
    p.info.actuators.push_back("lr");
  const std::size_t n = p.snapshots.size();
  if (n < 8) {
    p.why = "fewer than 8 snapshots";
    return p;
  }
  double max_lr = 0;
  for (const Snapshot* s : p.snapshots)
    if (s->lr) max_lr = std::max(max_lr, *s->lr);
  Eigen::VectorXd y(static_cast<Eigen::Index>(n)), u(static_cast<Eigen::Index>(n));
  double worst = 0;
  std::size_t next_burn = 0;
  double scale = 1.0;
  for (std::size_t i = 0; i < n; ++i) {
    const Snapshot& s = *p.snapshots[i];
    // Non-finite losses enter as 10x the worst finite loss so far: a large disturbance.
    double l = s.loss;
    if (std::isfinite(l)) worst = std::max(worst, l);
    else l = 10.0 * std::max(worst, 1.0);
    y[static_cast<Eigen::Index>(i)] = l;
    while (next_burn < burns.size() && burns[next_burn]->apply_at_step <= s.step) scale = burns[next_burn++]->lr_scale;
    double lr_part = 0;
    if (max_lr > 0 && s.lr) lr_part = std::log(std::max(*s.lr / max_lr, 1e-3));
    u[static_cast<Eigen::Index>(i)] = lr_part + std::log(std::max(scale, 1e-6));
  }
  const PlantFit fit = fit_plant(y, u);
  if (!fit.valid) {
    p.why = "no plant fit (the lr never moved, or too little data)";
    return p;
  }
  p.model = fit.model;
  p.u.assign(u.data(), u.data() + n);
  p.y0 = y[0];
  p.residual.resize(n, 0.0);
  for (std::size_t i = 0; i + 1 < n; ++i)
    p.residual[i] = y[static_cast<Eigen::Index>(i + 1)] - p.model.step(y[static_cast<Eigen::Index>(i)], p.u[i]);
  p.ref.resize(n);
  double running_min = kInf;
  for (std::size_t i = 0; i < n; ++i) {
    running_min = std::min(running_min, y[static_cast<Eigen::Index>(i)]);
    p.ref[i] = 1.05 * std::max(running_min, 1e-9);
  }
  p.ok = true;
  return p;
}

double closed_loop_cost(const PlantRun& p, const NavigatorConfig& config, RunScore& score) {
  Navigator nav(config, p.info, Mode::active);
  nav.set_report_metrics(false);  // only the burn and the lr scale are read
  double y = p.y0, cost = 0;
  const std::size_t n = p.snapshots.size();
  for (std::size_t i = 0; i < n; ++i) {
    Snapshot s = *p.snapshots[i];
    s.loss = y;
    const Decision d = nav.on_snapshot(s);
    if (d.burn) {
      ++score.burns;
      Ack ack;
      ack.run = s.run;
      ack.seq = d.burn->seq;
      ack.step = d.burn->apply_at_step;
      nav.on_ack(ack);
    }
    const double scale = std::max(d.lr_scale, 1e-6);
    // Capped at 10x the reference: a diverged stretch counts as very bad, not as 1e13.
    const double excess = std::min(10.0, std::max(0.0, y - p.ref[i]) / p.ref[i]);
    cost += excess * excess + 0.1 * std::log(scale) * std::log(scale);
    if (i + 1 < n) {
      y = p.model.step(y, p.u[i] + std::log(scale)) + p.residual[i];
      if (!std::isfinite(y)) y = 1e6;
      y = std::clamp(y, 0.0, 1e6);
    }
  }
  return n ? cost / static_cast<double>(n) : 0.0;
}

class Evaluator {
 public:
  Evaluator(const std::vector<TuneRun>& runs, const std::vector<TuneParam>& params, const TuneOptions& options)
      : runs_(runs), params_(params), options_(options) {
    settings_ = options.replay;
    settings_.keep_timeline = false;
    if (options.objective == Objective::closed_loop)
      for (const auto& r : runs) plants_.push_back(fit_run(r));
  }

  const std::vector<PlantRun>& plants() const { return plants_; }

  Candidate evaluate(const std::vector<double>* values) const {
    Candidate c;
    if (values) c.values = *values;
    NavigatorConfig config;
    try {
      const Overrides o = values ? candidate_overrides(params_, *values) : Overrides{};
      config = config_with_overrides(options_.base_text, o, options_.base_source).navigator;
      const auto problems = config.validate();
      if (!problems.empty()) throw ConfigError(options_.base_source, "", problems.front());
    } catch (const std::exception& e) {
      c.valid = false;
      c.problem = e.what();
      c.cost = kInf;
      return c;
    }
    for (std::size_t i = 0; i < runs_.size(); ++i) {
      const TuneRun& run = runs_[i];
      RunScore score;
      score.run = run.recording.run;
      if (options_.objective == Objective::open_loop) {
        const RunReplay r = replay_fixed(run.recording, config, Mode::active, run.failures, settings_);
        score.failures = r.failures.size();
        score.in_time = r.scoring.in_time;
        score.late = r.scoring.late;
        score.missed = r.scoring.missed;
        score.false_alarms = r.scoring.false_alarms;
        score.burns = r.burns.size();
        score.cost = open_loop_cost(r.scoring, r.steps.size(), settings_.score.lead_window, score);
      } else {
        if (!plants_[i].ok) continue;
        score.cost = closed_loop_cost(plants_[i], config, score);
      }
      c.cost += score.cost;
      c.runs.push_back(std::move(score));
    }
    return c;
  }

 private:
  const std::vector<TuneRun>& runs_;
  const std::vector<TuneParam>& params_;
  const TuneOptions& options_;
  ReplaySettings settings_;
  std::vector<PlantRun> plants_;
};

// Nelder-Mead in the unit box; `eval` maps unit coordinates to a cost.
template <class Eval>
void nelder_mead(std::vector<double> start, std::size_t budget, Eval&& eval) {
  const std::size_t d = start.size();
  if (budget < d + 2) return;
  std::size_t used = 0;
  auto f = [&](std::vector<double> x) {
    for (auto& v : x) v = std::clamp(v, 0.0, 1.0);
    ++used;
    return std::make_pair(eval(x), x);
  };
  std::vector<std::pair<double, std::vector<double>>> simplex;
  simplex.push_back(f(start));
  for (std::size_t i = 0; i < d; ++i) {
    std::vector<double> x = start;
    x[i] += x[i] + 0.15 <= 1.0 ? 0.15 : -0.15;
    simplex.push_back(f(x));
  }
  while (used + 1 <= budget) {
    std::sort(simplex.begin(), simplex.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    double size = 0;
    for (std::size_t i = 1; i <= d; ++i)
      for (std::size_t k = 0; k < d; ++k) size = std::max(size, std::abs(simplex[i].second[k] - simplex[0].second[k]));
    if (size < 1e-4) break;
    std::vector<double> centroid(d, 0.0);
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t k = 0; k < d; ++k) centroid[k] += simplex[i].second[k] / static_cast<double>(d);
    auto along = [&](double t) {
      std::vector<double> x(d);
      for (std::size_t k = 0; k < d; ++k) x[k] = centroid[k] + t * (simplex[d].second[k] - centroid[k]);
      return x;
    };
    auto r = f(along(-1.0));
    if (r.first < simplex[0].first) {
      if (used + 1 > budget) {
        simplex[d] = r;
        break;
      }
      auto e = f(along(-2.0));
      simplex[d] = e.first < r.first ? e : r;
    } else if (r.first < simplex[d - 1].first) {
      simplex[d] = r;
    } else {
      if (used + 1 > budget) break;
      auto c = f(along(r.first < simplex[d].first ? -0.5 : 0.5));
      if (c.first < std::min(r.first, simplex[d].first)) {
        simplex[d] = c;
      } else {
        // Shrink toward the best.
        for (std::size_t i = 1; i <= d && used + 1 <= budget; ++i) {
          std::vector<double> x(d);
          for (std::size_t k = 0; k < d; ++k) x[k] = simplex[0].second[k] + 0.5 * (simplex[i].second[k] - simplex[0].second[k]);
          simplex[i] = f(x);
        }
      }
    }
  }
}

}  // namespace

TuneResult tune(std::vector<TuneRun>& runs, std::vector<TuneParam>& params, const TuneOptions& options,
                std::vector<TuneRun>* held_out) {
  const auto t0 = std::chrono::steady_clock::now();
  TuneResult result;
  try {
    const NavigatorConfig base = config_with_overrides(options.base_text, {}, options.base_source).navigator;
    // Every open-loop candidate replays the same snapshots: the filters that read only
    // them answer from one replay's memo wherever a candidate's calls are the same.
    auto prepare = [&](RecordedRun& recording) {
      precompute_spectral_metrics(recording, base.signals.phi_target);
      if (options.objective == Objective::open_loop) record_filter_memo(recording, base, Mode::active);
    };
    for (auto& run : runs) prepare(run.recording);
    if (held_out)
      for (auto& run : *held_out) prepare(run.recording);
  } catch (const std::exception&) {
    // A base config that does not parse is reported by the first evaluation below.
  }
  Evaluator evaluator(runs, params, options);
  if (options.objective == Objective::closed_loop) {
    std::size_t usable = 0;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (evaluator.plants()[i].ok) ++usable;
      else result.notes.push_back(runs[i].recording.run + ": left out of the closed loop: " + evaluator.plants()[i].why);
    }
    if (!usable) throw SpaceError("closed-loop: no run has a plant fit (" + result.notes.front() + ")");
  }
  // The starting values, where the starting config states them.
  toml::table base;
  try {
    base = toml::parse(options.base_text);
  } catch (const toml::parse_error&) {
  }
  for (auto& p : params)
    if (auto v = base.at_path(full_config_key(p.key)).value<double>()) p.start = *v;

  std::atomic<std::size_t> done{0};
  auto count = [&] {
    const std::size_t n = ++done;
    if (options.progress) options.progress(n);
  };
  result.before = evaluator.evaluate(nullptr);
  count();

  const std::size_t budget = std::max<std::size_t>(options.budget, 2);
  const std::size_t d = params.size();
  const std::size_t n_random = std::max<std::size_t>(1, (budget * 6) / 10 - 1);
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::vector<double>> units(n_random, std::vector<double>(d));
  for (auto& u : units)
    for (auto& x : u) x = unit(rng);
  // The starting point itself (where known) is one of the random candidates.
  if (std::all_of(params.begin(), params.end(), [](const TuneParam& p) { return p.start.has_value(); }))
    for (std::size_t k = 0; k < d; ++k) units[0][k] = params[k].unit_of(*params[k].start);

  auto to_values = [&](const std::vector<double>& u) {
    std::vector<double> v(d);
    for (std::size_t k = 0; k < d; ++k) v[k] = params[k].value_at(u[k]);
    return v;
  };

  const std::size_t jobs = std::max<std::size_t>(1, options.jobs);
  std::vector<Candidate> random(n_random);
  {
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    for (std::size_t j = 0; j < jobs; ++j)
      workers.emplace_back([&] {
        for (std::size_t i = next++; i < n_random; i = next++) {
          const auto values = to_values(units[i]);
          random[i] = evaluator.evaluate(&values);
          count();
        }
      });
    for (auto& w : workers) w.join();
  }

  // Nelder-Mead from the best distinct random points, one per job.
  std::vector<std::size_t> order(n_random);
  for (std::size_t i = 0; i < n_random; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return random[a].cost < random[b].cost; });
  const std::size_t remaining = budget > 1 + n_random ? budget - 1 - n_random : 0;
  std::size_t simplices = std::min({jobs, order.size(), remaining / (d + 2)});
  std::vector<Candidate> local_best(simplices);
  std::vector<std::size_t> local_used(simplices, 0);
  if (simplices > 0) {
    const std::size_t share = remaining / simplices;
    std::vector<std::thread> workers;
    for (std::size_t s = 0; s < simplices; ++s)
      workers.emplace_back([&, s] {
        local_best[s].cost = kInf;
        nelder_mead(units[order[s]], share, [&](const std::vector<double>& u) {
          const auto values = to_values(u);
          Candidate c = evaluator.evaluate(&values);
          ++local_used[s];
          count();
          const double cost = c.cost;
          if (cost < local_best[s].cost) local_best[s] = std::move(c);
          return cost;
        });
      });
    for (auto& w : workers) w.join();
  }

  result.best = random[order.front()];
  for (const auto& c : local_best)
    if (c.valid && c.cost < result.best.cost) result.best = c;
  result.evaluations = 1 + n_random;
  for (auto n : local_used) result.evaluations += n;

  // Simplices that converged early leave budget: spend it on more random points.
  if (result.evaluations < budget) {
    const std::size_t extra = budget - result.evaluations;
    std::vector<std::vector<double>> more(extra, std::vector<double>(d));
    for (auto& u : more)
      for (auto& x : u) x = unit(rng);
    std::vector<Candidate> scored(extra);
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> workers;
    for (std::size_t j = 0; j < jobs; ++j)
      workers.emplace_back([&] {
        for (std::size_t i = next++; i < extra; i = next++) {
          const auto values = to_values(more[i]);
          scored[i] = evaluator.evaluate(&values);
          count();
        }
      });
    for (auto& w : workers) w.join();
    for (auto& c : scored)
      if (c.valid && c.cost < result.best.cost) result.best = std::move(c);
    result.evaluations += extra;
  }
  if (held_out && !held_out->empty()) {
    // Scored once, after the search: the held-out runs never steer it.
    Evaluator held(*held_out, params, options);
    if (options.objective == Objective::closed_loop)
      for (std::size_t i = 0; i < held_out->size(); ++i)
        if (!held.plants()[i].ok)
          result.notes.push_back((*held_out)[i].recording.run + " (held out): left out of the closed loop: " +
                                 held.plants()[i].why);
    result.before_held_out = held.evaluate(nullptr);
    result.best_held_out = result.best.valid && !result.best.values.empty() ? held.evaluate(&result.best.values)
                                                                            : result.before_held_out;
    // False alarms are an open-loop count: the closed-loop objective replays them too.
    Candidate alarms_before = result.before_held_out, alarms_best = result.best_held_out;
    if (options.objective != Objective::open_loop) {
      TuneOptions open_loop = options;
      open_loop.objective = Objective::open_loop;
      Evaluator alarms(*held_out, params, open_loop);
      alarms_before = alarms.evaluate(nullptr);
      alarms_best = result.best.valid && !result.best.values.empty() ? alarms.evaluate(&result.best.values)
                                                                     : alarms_before;
    }
    for (const TuneRun& run : *held_out) {
      if (!run.failures.empty()) continue;
      ++result.held_out_healthy_runs;
      for (const RunScore& r : alarms_before.runs)
        if (r.run == run.recording.run) result.held_out_false_alarms_before += r.false_alarms;
      for (const RunScore& r : alarms_best.runs)
        if (r.run == run.recording.run) result.held_out_false_alarms_best += r.false_alarms;
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace orbit
