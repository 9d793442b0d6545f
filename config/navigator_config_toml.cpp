// SPDX-License-Identifier: Apache-2.0
#include "config/navigator_config_toml.hpp"

#include "config/toml_table.hpp"

#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

namespace orbit {

namespace {

using Table = TomlTable;  // the one TOML reader (config/toml_table.hpp)

Basin basin_named(Table& t, std::string_view k, const std::string& name, bool allow_creative) {
  auto b = basin_from_string(name);
  if (!b || *b == Basin::unknown || (!allow_creative && *b == Basin::creative)) {
    t.fail(k, "unknown basin '" + name + "'; use " +
                  std::string(allow_creative ? "CREATIVE, SEMANTIC_LOOP or TOKEN_COLLAPSE"
                                             : "SEMANTIC_LOOP or TOKEN_COLLAPSE"));
  }
  return *b;
}

void read_signals(Table& t, SignalConfig& s) {
  if (auto a = t.string("aggregation")) {
    if (*a == "worst") {
      s.aggregation = Aggregation::worst;
    } else if (*a == "mean") {
      s.aggregation = Aggregation::mean;
    } else {
      t.fail("aggregation", "must be \"worst\" or \"mean\", got \"" + *a + "\"");
    }
  }
  t.strings("spectra", s.spectra);
  t.number("phi_target", s.phi_target, 0.0, 1e6, true);
  t.strings("signature_spectra", s.signature_spectra);
  t.number("signature_dominant_ratio", s.signature_dominant_ratio, 0.0, 1.0, true);
  t.number("signature_effective_rank", s.signature_effective_rank, 0.0, 1e9);
  t.integer("signature_early_steps", s.signature_early_steps, 0, 1'000'000'000);
  t.integer("signature_confirm_steps", s.signature_confirm_steps, 0, 1'000'000);
  t.number("signature_early_loss_fall", s.signature_early_loss_fall, 0.0, 1.0);
  t.integer("loop_rate_confirm_readings", s.loop_rate_confirm_readings, 1, 1'000'000);
  t.number("attn_logit_floor", s.attn_logit.floor, 0.0, 1e12);
  t.integer("attn_logit_window_steps", s.attn_logit.window_steps, 1, 1'000'000);
  t.done();
}

void read_filters(Table& t, FilterConfig& f) {
  t.number("metric_alpha", f.metric_alpha, 0.0, 1.0, true);
  t.number("loss_alpha", f.loss_alpha, 0.0, 1.0, true);
  t.number("grad_norm_alpha", f.grad_norm_alpha, 0.0, 1.0, true);
  t.integer("warmup_steps", f.warmup_steps, 2, 1'000'000);
  t.number("z_clip", f.z_clip, 0.0, 1000.0, true);
  t.integer("spike_confirm_steps", f.spike_confirm_steps, 1, 1000);
  t.number("loss_min_sd_rel", f.loss_min_sd_rel, 0.0, 1.0);
  t.number("loss_spike_min_sd_rel", f.loss_spike_min_sd_rel, 0.0, 1.0);
  t.number("loss_spike_min_ratio", f.loss_spike_min_ratio, 1.0, 1e6);
  t.number("grad_norm_min_sd", f.grad_norm_min_sd, 0.0, 100.0, true);
  t.integer("trend_window", f.trend_window, 3, 100'000);
  t.number("trend_sigmas", f.trend_sigmas, 0.0, 100.0);
  t.integer("forecast_horizon", f.forecast_horizon, 1, 100'000'000);
  t.integer("health_window", f.health_window, 3, 100'000);
  t.number("cusum_k", f.cusum_k, 0.0, 100.0);
  t.number("cusum_h", f.cusum_h, 0.0, 1e6, true);
  t.number("zone_hysteresis", f.zone_hysteresis, 0.0, 1.0);
  t.number("loss_jump_ratio", f.loss_jump_ratio, 0.0, 1e6);
  t.number("loss_jump_grad_ratio", f.loss_jump_grad_ratio, 1.0, 1e12, true);
  t.integer("loss_jump_arm_step", f.loss_jump_arm_step, 0, 1'000'000'000'000);
  t.boolean("loss_jump_early_corroborated", f.loss_jump_early_corroborated);
  t.number("loss_jump_min_noise_z", f.loss_jump_min_noise_z, 0.0, 1e6);
  {
    Table c(t.table("cadence_noise"), t.key("cadence_noise"), t.file());
    CadenceNoiseParams& p = f.cadence_noise;
    c.integer("level_window", p.level_window, 1, 1000);
    c.integer("noise_window", p.noise_window, 1, 100'000);
    c.integer("warmup", p.warmup, 1, 100'000);
    c.integer("early_warmup", p.early_warmup, 1, 100'000);
    c.number("clip", p.clip, 0.0, 1e6, true);
    c.number("min_noise", p.min_noise, 0.0, 1e6, true);
    c.number("cadence_change", p.cadence_change, 1.0, 1e9, true);
    c.done();
  }
  t.done();
}

void read_pid_gains(Table& parent, std::string_view name, PidGains& g) {
  Table t(parent.table(name), parent.key(name), parent.file());
  t.number("kp", g.kp, 0.0, 100.0);
  t.number("ki", g.ki, 0.0, 100.0);
  t.number("kd", g.kd, 0.0, 100000.0);
  t.done();
}

}  // namespace

std::map<std::string, DomainProfile> load_basin_map(const toml::table& root, const std::string& file) {
  std::map<std::string, DomainProfile> map;
  Table top(&root, "", file);
  const toml::table* domains = top.table("domains");
  top.done();
  if (!domains) return map;
  for (const auto& [name, node] : *domains) {
    const std::string domain(name.str());
    if (!node.is_table()) throw ConfigError(file, "domains." + domain, "must be a table ([domains." + domain + "])");
    Table t(node.as_table(), "domains." + domain, file);
    DomainProfile p;
    std::vector<std::string> basins;
    t.strings("basins", basins);
    for (const auto& b : basins) p.basins.push_back(basin_named(t, "basins", b, true));
    if (auto v = t.string("verdict")) {
      auto verdict = verdict_from_string(*v);
      if (!verdict) t.fail("verdict", "must be one of increase, reduce, remove, analyse; got \"" + *v + "\"");
      p.verdict = *verdict;
    }
    double weight = 0.0;
    if (t.node("weight")) {
      t.number("weight", weight, 0.0, 1e9, true);
      p.weight = weight;
    }
    if (auto note = t.string("note")) p.note = *note;
    t.done();
    map[domain] = std::move(p);
  }
  return map;
}

std::map<std::string, DomainProfile> load_basin_map_file(const std::string& path) {
  return load_basin_map(load_toml_file(path), path);
}

NavigatorConfig load_navigator_config(const toml::table& root, const std::string& file) {
  NavigatorConfig c;
  const toml::node* node = root.get("controller");
  if (!node) return c;
  if (!node->is_table()) throw ConfigError(file, "controller", "must be a table ([controller])");
  Table top(node->as_table(), "controller", file);

  top.number("stale_after_seconds", c.stale_after_seconds, 0.0, 1e9, true);
  if (auto path = top.string("basin_map")) {
    if (!path->empty()) {
      std::filesystem::path p(*path);
      if (p.is_relative()) p = std::filesystem::path(file).parent_path() / p;
      if (!std::filesystem::is_regular_file(p)) {
        top.fail("basin_map", "no such file: " + p.string() + " (relative paths start at the config file's folder)");
      }
      c.basin_map_file = p.lexically_normal().string();
      c.basin_map = load_basin_map_file(c.basin_map_file);
    }
  }

  { Table t(top.table("signals"), "controller.signals", file); read_signals(t, c.signals); }
  { Table t(top.table("filters"), "controller.filters", file); read_filters(t, c.filters); }

  if (const toml::table* zones = top.table("zones")) {
    const std::set<std::string> metrics(std::begin(kZoneMetrics), std::end(kZoneMetrics));
    for (const auto& [name, zone_node] : *zones) {
      const std::string metric(name.str());
      const std::string key = "controller.zones." + metric;
      if (!metrics.count(metric)) {
        throw ConfigError(file, key,
                          "unknown metric; zones exist for entropy, effective_rank, normalized_entropy, dominant_ratio, "
                          "phi_proximity, loop_rate, loss_z, grad_norm_z");
      }
      if (!zone_node.is_table()) throw ConfigError(file, key, "must be a table ([" + key + "])");
      Table t(zone_node.as_table(), key, file);
      ZoneConfig z = c.zones.count(metric) ? c.zones[metric] : ZoneConfig{};
      const bool had = c.zones.count(metric) > 0;
      bool enabled = true;
      t.boolean("enabled", enabled);
      if (!had && (!t.node("good") || !t.node("danger")) && enabled) {
        t.fail(t.node("good") ? "danger" : "good", "a zone for a metric without a default needs both good and danger");
      }
      t.number("good", z.band.good, -1e12, 1e12);
      t.number("danger", z.band.danger, -1e12, 1e12);
      t.boolean("alarm", z.alarm);
      t.done();
      if (z.band.good == z.band.danger) t.fail("danger", "must differ from good (their order says which way is better)");
      if (enabled) {
        c.zones[metric] = z;
      } else {
        c.zones.erase(metric);
      }
    }
  }

  if (const toml::array* rules = top.tables("basin_rules")) {
    c.basin_rules.clear();
    const std::set<std::string> metrics(std::begin(kZoneMetrics), std::end(kZoneMetrics));
    for (std::size_t i = 0; i < rules->size(); ++i) {
      const std::string key = "controller.basin_rules[" + std::to_string(i) + "]";
      Table t((*rules)[i].as_table(), key, file);
      BasinRule r;
      auto basin = t.string("basin");
      if (!basin) t.fail("basin", "is required (SEMANTIC_LOOP or TOKEN_COLLAPSE)");
      r.basin = basin_named(t, "basin", *basin, false);
      t.strings("metrics", r.metrics, false);
      if (r.metrics.empty()) t.fail("metrics", "is required: the metrics whose zones define this basin");
      for (const auto& m : r.metrics) {
        if (!metrics.count(m)) t.fail("metrics", "unknown metric '" + m + "'");
      }
      if (auto z = t.string("min_zone")) {
        auto zone = zone_from_string(*z);
        if (!zone || *zone == Zone::good) t.fail("min_zone", "must be \"warning\" or \"danger\", got \"" + *z + "\"");
        r.min_zone = *zone;
      }
      t.done();
      c.basin_rules.push_back(std::move(r));
    }
  }

  {
    Table t(top.table("states"), "controller.states", file);
    t.integer("confirm_steps", c.states.confirm_steps, 1, 100'000);
    t.integer("min_dwell_steps", c.states.min_dwell_steps, 1, 1'000'000);
    t.integer("recovery_steps", c.states.recovery_steps, 1, 1'000'000);
    t.done();
  }
  {
    Table t(top.table("pid"), "controller.pid", file);
    t.number("setpoint", c.pid.setpoint, 0.0, 2.0);
    t.number("integral_limit", c.pid.integral_limit, 0.0, 100.0);
    t.integer("return_steps_per_doubling", c.pid.return_steps_per_doubling, 1, 1'000'000);
    t.integer("lookahead_steps", c.pid.lookahead_steps, 0, 1'000'000);
    read_pid_gains(t, "stable", c.pid.stable);
    read_pid_gains(t, "drifting", c.pid.drifting);
    read_pid_gains(t, "warning", c.pid.warning);
    read_pid_gains(t, "critical", c.pid.critical);
    read_pid_gains(t, "recovering", c.pid.recovering);
    t.done();
  }
  {
    Table t(top.table("limits"), "controller.limits", file);
    BurnLimits& l = c.limits;
    t.number("lr_scale_min", l.lr_scale_min, 0.0, 1e6, true);
    t.number("lr_scale_max", l.lr_scale_max, 0.0, 1e6, true);
    t.number("max_lr_change", l.max_lr_change, 1.0, 1e6, true);
    t.number("weight_floor", l.weight_floor, 0.0, 1.0);
    t.integer("expiry_steps", l.expiry_steps, 1, 1'000'000'000);
    t.integer("apply_lead_steps", l.apply_lead_steps, 0, 1'000'000);
    t.integer("max_apply_lead_steps", l.max_apply_lead_steps, 0, 1'000'000);
    t.number("lr_deadband", l.lr_deadband, 0.0, 1.0);
    t.number("weight_deadband", l.weight_deadband, 0.0, 1.0);
    t.number("loss_weight_deadband", l.loss_weight_deadband, 0.0, 1.0);
    t.done();
    if (l.lr_scale_max < l.lr_scale_min) t.fail("lr_scale_max", "must be >= lr_scale_min");
    if (l.max_apply_lead_steps < l.apply_lead_steps) t.fail("max_apply_lead_steps", "must be >= apply_lead_steps");
  }
  {
    Table t(top.table("reweight"), "controller.reweight", file);
    t.number("rate", c.reweight.rate, 0.0, 1.0);
    t.number("relax", c.reweight.relax, 0.0, 1.0);
    t.number("snap", c.reweight.snap, 0.0, 1.0);
    t.done();
  }
  {
    Table t(top.table("curriculum"), "controller.curriculum", file);
    t.integer("advance_after_stable_steps", c.curriculum.advance_after_stable_steps, 1, 1'000'000'000);
    if (const toml::array* phases = t.tables("phases")) {
      for (std::size_t i = 0; i < phases->size(); ++i) {
        Table p((*phases)[i].as_table(), "controller.curriculum.phases[" + std::to_string(i) + "]", file);
        CurriculumPhase phase;
        if (auto name = p.string("name")) phase.name = *name;
        p.strings("domains", phase.domains, false);
        if (phase.domains.empty()) p.fail("domains", "is required: the domains of this phase");
        p.done();
        c.curriculum.phases.push_back(std::move(phase));
      }
    }
    t.done();
  }
  {
    Table t(top.table("loss_weights"), "controller.loss_weights", file);
    t.number("collapse_max", c.loss_weights.collapse_max, 0.0, 1000.0);
    t.number("phi_max", c.loss_weights.phi_max, 0.0, 1000.0);
    t.number("quantum", c.loss_weights.quantum, 0.0, 1.0);
    t.done();
  }
  {
    Table t(top.table("rollback"), "controller.rollback", file);
    RollbackPolicy& r = c.rollback;
    t.boolean("enabled", r.enabled);
    t.boolean("on_collapse_signature", r.on_collapse_signature);
    t.boolean("on_attn_logit_growth", r.on_attn_logit_growth);
    t.boolean("on_nonfinite", r.on_nonfinite);
    t.integer("patience_steps", r.patience_steps, 1, 1'000'000);
    t.number("min_improvement", r.min_improvement, 0.0, 3.0);
    t.number("ceiling_factor", r.ceiling_factor, 0.0, 1.0, true);
    t.integer("ceiling_relax_steps", r.ceiling_relax_steps, 1, 1'000'000'000);
    t.integer("window_steps", r.window_steps, 1, 1'000'000'000);
    t.integer("max_per_window", r.max_per_window, 0, 1'000'000);
    t.integer("ack_timeout_steps", r.ack_timeout_steps, 1, 1'000'000);
    t.integer("signature_grace_steps", r.signature_grace_steps, 0, 1'000'000);
    t.integer("lookback_steps", r.lookback_steps, 0, 1'000'000'000);
    t.number("restart_scale", r.restart_scale, 0.0, 1.0, true);
    t.integer("rewarm_steps", r.rewarm_steps, 0, 1'000'000'000);
    t.boolean("skip_batches", r.skip_batches);
    t.number("stalled_branch_fall", r.stalled_branch_fall, 0.0, 1.0);
    t.done();
  }
  {
    Table t(top.table("lr_ceiling"), "controller.lr_ceiling", file);
    t.boolean("enabled", c.lr_ceiling.enabled);
    t.number("share", c.lr_ceiling.share, 0.0, 1.0, true);
    t.integer("relax_steps", c.lr_ceiling.relax_steps, 1, 1'000'000'000);
    t.integer("first_cap_hold_steps", c.lr_ceiling.first_cap_hold_steps, 0, 1'000'000'000);
    t.done();
  }
  {
    Table t(top.table("distributed"), "controller.distributed", file);
    t.number("quorum", c.distributed.quorum, 0.0, 1.0, true);
    t.integer("deadline_steps", c.distributed.deadline_steps, 1, 1'000'000);
    t.number("deadline_seconds", c.distributed.deadline_seconds, 0.0, 1e9, true);
    t.done();
  }
  top.done();

  // Cross-field rules (validate() is the one list of them).
  for (const std::string& problem : c.validate()) {
    const auto colon = problem.find(": ");
    throw ConfigError(file, problem.substr(0, colon), colon == std::string::npos ? problem : problem.substr(colon + 2));
  }
  return c;
}

}  // namespace orbit
