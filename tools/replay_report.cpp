// SPDX-License-Identifier: Apache-2.0
#include "tools/replay_report.hpp"

#include <cmath>
#include <cstdio>
#include <set>

#include "protocol/json_writer.hpp"

namespace orbit {

namespace {

std::string g(double v) {
  if (!std::isfinite(v)) return format_double(v);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::string replay_text(const RunReplay& r, bool verbose) {
  std::string s = "run " + r.run + ": " + std::to_string(r.steps.size()) + " snapshots, config " +
                  r.config_description;
  if (r.seconds > 0 && !r.steps.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", replayed in %.1f ms", r.seconds * 1e3);
    s += buf;
  }
  s += "\n";
  if (!r.journal.clean()) s += "  journal: " + r.journal.summary() + "\n";
  for (const auto& u : r.undecodable) s += "  undecodable record: " + u + "\n";
  for (const auto& gap : r.gaps) s += "  journal gap: " + gap + "\n";
  if (r.orphan_snapshots) s += "  " + std::to_string(r.orphan_snapshots) + " snapshots before any hello (not fed)\n";

  // The state timeline, compressed to runs of one state.
  if (!r.timeline.empty()) {
    s += "  states:";
    std::size_t shown = 0, runs = 0;
    for (std::size_t i = 0; i < r.timeline.size();) {
      std::size_t j = i;
      while (j + 1 < r.timeline.size() && r.timeline[j + 1].state == r.timeline[i].state) ++j;
      ++runs;
      if (verbose || shown < 12) {
        s += " " + r.timeline[i].state + " " + std::to_string(r.timeline[i].step) +
             (j > i ? "-" + std::to_string(r.timeline[j].step) : std::string()) + ";";
        ++shown;
      }
      i = j + 1;
    }
    if (runs > shown) s += " ... (" + std::to_string(runs - shown) + " more; --verbose or --out for all)";
    s += "\n";
  }

  s += "  burns: " + std::to_string(r.burns.size());
  const std::size_t burn_limit = verbose ? r.burns.size() : 5;
  for (std::size_t i = 0; i < r.burns.size() && i < burn_limit; ++i) {
    const auto& b = r.burns[i];
    s += "\n    #" + std::to_string(b.burn.seq) + " step " + std::to_string(b.at_step) + (b.forced ? " (forced)" : "") +
         " " + b.burn.state + " lr x" + g(b.burn.lr_scale) + ": " + b.burn.reason;
  }
  if (r.burns.size() > burn_limit) s += "\n    ... " + std::to_string(r.burns.size() - burn_limit) + " more";
  s += "\n";

  if (!r.recorded_burns.empty() || (r.used_recorded_config && !r.overridden)) {
    if (r.overridden) {
      s += "  recorded burns: " + std::to_string(r.recorded_burns.size()) + "; " + std::to_string(r.burns_matching) +
           " equal under the changed config\n";
    } else if (r.reproduced()) {
      s += "  recorded burns: " + std::to_string(r.recorded_burns.size()) +
           ", all reproduced bit for bit with the recorded config\n";
    } else {
      s += "  recorded burns: " + std::to_string(r.recorded_burns.size()) + ", replay computed " +
           std::to_string(r.burns.size()) + ", " + std::to_string(r.burns_matching) +
           " equal: NOT reproduced with the recorded config\n";
    }
    if (!r.overridden && !r.unrecorded_seqs.empty()) {
      std::string seqs;
      for (auto q : r.unrecorded_seqs) seqs += (seqs.empty() ? "#" : ", #") + std::to_string(q);
      s += "  computed burns not in the journal: " + seqs +
           " (the daemon stopped after journaling the snapshot, before journaling its burn)\n";
    }
  }

  s += "  failures: " + std::to_string(r.failures.size()) + " (" + r.failure_source + ")\n";
  for (const auto& d : r.scoring.detections) {
    s += "    " + d.failure.kind + " peak at step " + std::to_string(d.failure.peak);
    if (d.failure.onset != d.failure.peak || d.failure.end != d.failure.peak)
      s += " (steps " + std::to_string(d.failure.onset) + "-" + std::to_string(d.failure.end) + ")";
    if (d.first_alarm)
      s += ": first alarm at step " + std::to_string(*d.first_alarm) + ", lead " + std::to_string(*d.lead) + " steps" +
           (d.in_time() ? "" : " (late)");
    else
      s += ": missed";
    s += "\n";
  }
  s += "  alarms: " + std::to_string(r.scoring.episodes.size()) + " episodes, " +
       std::to_string(r.scoring.false_alarms) + " false";
  std::size_t shown = 0;
  for (const auto& ep : r.scoring.episodes)
    if (ep.false_alarm && (verbose || shown < 5)) {
      s += (shown++ ? ", " : " at steps ") + std::to_string(ep.start) +
           (ep.end != ep.start ? "-" + std::to_string(ep.end) : std::string());
    }
  s += "\n";
  return s;
}

namespace {

void burn_json(JsonWriter& w, const Burn& b) {
  w.begin_object();
  w.field("seq", b.seq).field("state", b.state).field("basin", b.basin).field("reason", b.reason);
  w.field("for_step", b.for_step).field("apply_at_step", b.apply_at_step);
  w.field("expires_after_steps", b.expires_after_steps).field("lr_scale", b.lr_scale);
  if (!b.domain_weights.empty()) {
    w.key("domain_weights").begin_object();
    for (const auto& [k, v] : b.domain_weights) w.field(k, v);
    w.end_object();
  }
  if (b.curriculum_phase) w.field("curriculum_phase", *b.curriculum_phase);
  if (!b.loss_weights.empty()) {
    w.key("loss_weights").begin_object();
    for (const auto& [k, v] : b.loss_weights) w.field(k, v);
    w.end_object();
  }
  if (b.rollback_to_step) w.field("rollback_to_step", *b.rollback_to_step);
  if (b.skip_batches) w.field("skip_batches", *b.skip_batches);
  w.end_object();
}

}  // namespace

std::string replay_json(const std::vector<const RunReplay*>& runs, bool timeline) {
  JsonWriter w(true);
  w.begin_object();
  w.key("runs").begin_array();
  for (const RunReplay* r : runs) {
    w.begin_object();
    w.field("run", r->run).field("config", r->config_description);
    w.field("overridden", r->overridden).field("snapshots", static_cast<std::uint64_t>(r->steps.size()));
    w.field("replay_seconds", r->seconds);
    w.key("journal").begin_object();
    w.field("records", r->journal.records).field("clean", r->journal.clean()).field("summary", r->journal.summary());
    w.end_object();
    w.key("burns").begin_array();
    for (const auto& b : r->burns) {
      w.begin_object();
      w.field("at_step", b.at_step).field("forced", b.forced);
      if (b.matches_recorded) w.field("matches_recorded", *b.matches_recorded);
      w.key("burn");
      burn_json(w, b.burn);
      w.end_object();
    }
    w.end_array();
    w.field("recorded_burns", static_cast<std::uint64_t>(r->recorded_burns.size()));
    w.field("burns_matching", static_cast<std::uint64_t>(r->burns_matching));
    w.key("unrecorded_seqs").begin_array();
    for (auto q : r->unrecorded_seqs) w.value(q);
    w.end_array();
    if (!r->recorded_burns.empty() || r->used_recorded_config) w.field("reproduced", !r->overridden && r->reproduced());
    w.field("failure_source", r->failure_source);
    w.key("failures").begin_array();
    for (const auto& d : r->scoring.detections) {
      w.begin_object();
      w.field("kind", d.failure.kind).field("onset", d.failure.onset).field("peak", d.failure.peak);
      w.field("end", d.failure.end).field("note", d.failure.note);
      if (d.first_alarm) w.field("first_alarm", *d.first_alarm); else w.key("first_alarm").null();
      if (d.lead) w.field("lead", *d.lead); else w.key("lead").null();
      w.field("in_time", d.in_time());
      w.end_object();
    }
    w.end_array();
    w.key("alarm_episodes").begin_array();
    for (const auto& ep : r->scoring.episodes) {
      w.begin_object();
      w.field("start", ep.start).field("end", ep.end).field("snapshots", static_cast<std::uint64_t>(ep.snapshots));
      w.field("false_alarm", ep.false_alarm);
      w.end_object();
    }
    w.end_array();
    w.field("false_alarms", static_cast<std::uint64_t>(r->scoring.false_alarms));
    if (timeline) {
      w.key("timeline").begin_array();
      for (const auto& t : r->timeline) {
        w.begin_object();
        w.field("step", t.step).field("time", t.time);
        if (std::isfinite(t.loss)) w.field("loss", t.loss); else w.field("loss", format_double(t.loss));
        if (t.grad_norm) {
          if (std::isfinite(*t.grad_norm)) w.field("grad_norm", *t.grad_norm);
          else w.field("grad_norm", format_double(*t.grad_norm));
        }
        w.field("state", t.state).field("basin", t.basin).field("forecast_basin", t.forecast_basin);
        w.field("lr_scale", t.lr_scale);
        if (t.burn_seq) w.field("burn_seq", *t.burn_seq);
        w.key("metrics").begin_object();
        for (const auto& [k, v] : t.metrics) w.field(k, v);
        w.end_object();
        if (!t.events.empty()) {
          w.key("events").begin_array();
          for (const auto& e : t.events) w.value(e);
          w.end_array();
        }
        w.end_object();
      }
      w.end_array();
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take() + "\n";
}

std::string replay_csv(const std::vector<const RunReplay*>& runs) {
  std::set<std::string> metric_names;
  for (const RunReplay* r : runs)
    for (const auto& t : r->timeline)
      for (const auto& [k, v] : t.metrics) metric_names.insert(k);
  std::string s = "run,step,time,loss,grad_norm,state,basin,forecast_basin,lr_scale,alarm,burn_seq";
  // Metric columns carry a `metric.` prefix: the controller's metrics include `loss`,
  // `grad_norm` and `lr_scale`, which would otherwise repeat the fixed columns' names.
  for (const auto& m : metric_names) s += ",metric." + m;
  s += "\n";
  for (const RunReplay* r : runs)
    for (std::size_t i = 0; i < r->timeline.size(); ++i) {
      const auto& t = r->timeline[i];
      s += r->run + "," + std::to_string(t.step) + "," + format_double(t.time) + "," + format_double(t.loss) + "," +
           (t.grad_norm ? format_double(*t.grad_norm) : "") + "," + t.state + "," + t.basin + "," + t.forecast_basin +
           "," + format_double(t.lr_scale) + "," + (r->alarms[i] ? "1" : "0") + "," +
           (t.burn_seq ? std::to_string(*t.burn_seq) : "");
      for (const auto& m : metric_names) {
        s += ",";
        if (const double* v = t.metrics.find(m)) s += format_double(*v);
      }
      s += "\n";
    }
  return s;
}

}  // namespace orbit
