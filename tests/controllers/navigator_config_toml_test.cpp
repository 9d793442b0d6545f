// SPDX-License-Identifier: Apache-2.0
// TOML → NavigatorConfig: configs/default.toml equals the struct's defaults,
// every example profile loads, and every invalid value is a ConfigError that
// names the file, the dotted key and the reason.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "config/navigator_config_toml.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = ORBIT_SOURCE_DIR;

NavigatorConfig load_file(const fs::path& path) {
  return load_navigator_config(toml::parse_file(path.string()), path.string());
}

NavigatorConfig load_text(const std::string& text, const std::string& file = "test.toml") {
  return load_navigator_config(toml::parse(text, file), file);
}

void expect_gains(const PidGains& a, const PidGains& b, const char* what) {
  EXPECT_EQ(a.kp, b.kp) << what;
  EXPECT_EQ(a.ki, b.ki) << what;
  EXPECT_EQ(a.kd, b.kd) << what;
}

// Every field, so that a default changed in one place but not the other fails.
void expect_same(const NavigatorConfig& a, const NavigatorConfig& b) {
  EXPECT_EQ(a.signals.aggregation, b.signals.aggregation);
  EXPECT_EQ(a.signals.spectra, b.signals.spectra);
  EXPECT_EQ(a.signals.phi_target, b.signals.phi_target);
  EXPECT_EQ(a.signals.signature_spectra, b.signals.signature_spectra);
  EXPECT_EQ(a.signals.signature_dominant_ratio, b.signals.signature_dominant_ratio);
  EXPECT_EQ(a.signals.signature_effective_rank, b.signals.signature_effective_rank);
  const FilterConfig &f = a.filters, &g = b.filters;
  EXPECT_EQ(f.metric_alpha, g.metric_alpha);
  EXPECT_EQ(f.loss_alpha, g.loss_alpha);
  EXPECT_EQ(f.grad_norm_alpha, g.grad_norm_alpha);
  EXPECT_EQ(f.warmup_steps, g.warmup_steps);
  EXPECT_EQ(f.z_clip, g.z_clip);
  EXPECT_EQ(f.spike_confirm_steps, g.spike_confirm_steps);
  EXPECT_EQ(f.loss_min_sd_rel, g.loss_min_sd_rel);
  EXPECT_EQ(f.loss_spike_min_sd_rel, g.loss_spike_min_sd_rel);
  EXPECT_EQ(f.loss_spike_min_ratio, g.loss_spike_min_ratio);
  EXPECT_EQ(f.grad_norm_min_sd, g.grad_norm_min_sd);
  EXPECT_EQ(f.trend_window, g.trend_window);
  EXPECT_EQ(f.trend_sigmas, g.trend_sigmas);
  EXPECT_EQ(f.forecast_horizon, g.forecast_horizon);
  EXPECT_EQ(f.health_window, g.health_window);
  EXPECT_EQ(f.cusum_k, g.cusum_k);
  EXPECT_EQ(f.cusum_h, g.cusum_h);
  EXPECT_EQ(f.zone_hysteresis, g.zone_hysteresis);
  EXPECT_EQ(f.loss_jump_ratio, g.loss_jump_ratio);
  EXPECT_EQ(f.loss_jump_grad_ratio, g.loss_jump_grad_ratio);
  EXPECT_EQ(f.loss_jump_arm_step, g.loss_jump_arm_step);
  EXPECT_EQ(f.loss_jump_early_corroborated, g.loss_jump_early_corroborated);
  EXPECT_EQ(f.loss_jump_min_noise_z, g.loss_jump_min_noise_z);
  EXPECT_EQ(f.cadence_noise.level_window, g.cadence_noise.level_window);
  EXPECT_EQ(f.cadence_noise.noise_window, g.cadence_noise.noise_window);
  EXPECT_EQ(f.cadence_noise.warmup, g.cadence_noise.warmup);
  EXPECT_EQ(f.cadence_noise.early_warmup, g.cadence_noise.early_warmup);
  EXPECT_EQ(f.cadence_noise.clip, g.cadence_noise.clip);
  EXPECT_EQ(f.cadence_noise.min_noise, g.cadence_noise.min_noise);
  EXPECT_EQ(f.cadence_noise.cadence_change, g.cadence_noise.cadence_change);
  ASSERT_EQ(a.zones.size(), b.zones.size());
  for (const auto& [name, z] : a.zones) {
    ASSERT_TRUE(b.zones.count(name)) << name;
    EXPECT_EQ(z.band.good, b.zones.at(name).band.good) << name;
    EXPECT_EQ(z.band.danger, b.zones.at(name).band.danger) << name;
    EXPECT_EQ(z.alarm, b.zones.at(name).alarm) << name;
  }
  ASSERT_EQ(a.basin_rules.size(), b.basin_rules.size());
  for (std::size_t i = 0; i < a.basin_rules.size(); ++i) {
    EXPECT_EQ(a.basin_rules[i].basin, b.basin_rules[i].basin);
    EXPECT_EQ(a.basin_rules[i].metrics, b.basin_rules[i].metrics);
    EXPECT_EQ(a.basin_rules[i].min_zone, b.basin_rules[i].min_zone);
  }
  EXPECT_EQ(a.states.confirm_steps, b.states.confirm_steps);
  EXPECT_EQ(a.states.min_dwell_steps, b.states.min_dwell_steps);
  EXPECT_EQ(a.states.recovery_steps, b.states.recovery_steps);
  EXPECT_EQ(a.pid.setpoint, b.pid.setpoint);
  EXPECT_EQ(a.pid.integral_limit, b.pid.integral_limit);
  EXPECT_EQ(a.pid.return_steps_per_doubling, b.pid.return_steps_per_doubling);
  EXPECT_EQ(a.pid.lookahead_steps, b.pid.lookahead_steps);
  expect_gains(a.pid.stable, b.pid.stable, "stable");
  expect_gains(a.pid.drifting, b.pid.drifting, "drifting");
  expect_gains(a.pid.warning, b.pid.warning, "warning");
  expect_gains(a.pid.critical, b.pid.critical, "critical");
  expect_gains(a.pid.recovering, b.pid.recovering, "recovering");
  const BurnLimits &l = a.limits, &m = b.limits;
  EXPECT_EQ(l.lr_scale_min, m.lr_scale_min);
  EXPECT_EQ(l.lr_scale_max, m.lr_scale_max);
  EXPECT_EQ(l.max_lr_change, m.max_lr_change);
  EXPECT_EQ(l.weight_floor, m.weight_floor);
  EXPECT_EQ(l.expiry_steps, m.expiry_steps);
  EXPECT_EQ(l.apply_lead_steps, m.apply_lead_steps);
  EXPECT_EQ(l.max_apply_lead_steps, m.max_apply_lead_steps);
  EXPECT_EQ(l.lr_deadband, m.lr_deadband);
  EXPECT_EQ(l.weight_deadband, m.weight_deadband);
  EXPECT_EQ(l.loss_weight_deadband, m.loss_weight_deadband);
  EXPECT_EQ(a.reweight.rate, b.reweight.rate);
  EXPECT_EQ(a.reweight.relax, b.reweight.relax);
  EXPECT_EQ(a.reweight.snap, b.reweight.snap);
  EXPECT_EQ(a.basin_map.size(), b.basin_map.size());
  EXPECT_EQ(a.curriculum.phases.size(), b.curriculum.phases.size());
  EXPECT_EQ(a.curriculum.advance_after_stable_steps, b.curriculum.advance_after_stable_steps);
  EXPECT_EQ(a.loss_weights.collapse_max, b.loss_weights.collapse_max);
  EXPECT_EQ(a.loss_weights.phi_max, b.loss_weights.phi_max);
  EXPECT_EQ(a.loss_weights.quantum, b.loss_weights.quantum);
  const RollbackPolicy &r = a.rollback, &s = b.rollback;
  EXPECT_EQ(r.enabled, s.enabled);
  EXPECT_EQ(r.on_collapse_signature, s.on_collapse_signature);
  EXPECT_EQ(r.on_attn_logit_growth, s.on_attn_logit_growth);
  EXPECT_EQ(r.on_nonfinite, s.on_nonfinite);
  EXPECT_EQ(r.patience_steps, s.patience_steps);
  EXPECT_EQ(r.min_improvement, s.min_improvement);
  EXPECT_EQ(r.ceiling_factor, s.ceiling_factor);
  EXPECT_EQ(r.ceiling_relax_steps, s.ceiling_relax_steps);
  EXPECT_EQ(r.window_steps, s.window_steps);
  EXPECT_EQ(r.max_per_window, s.max_per_window);
  EXPECT_EQ(r.ack_timeout_steps, s.ack_timeout_steps);
  EXPECT_EQ(r.signature_grace_steps, s.signature_grace_steps);
  EXPECT_EQ(r.restart_scale, s.restart_scale);
  EXPECT_EQ(r.rewarm_steps, s.rewarm_steps);
  EXPECT_EQ(r.lookback_steps, s.lookback_steps);
  EXPECT_EQ(r.skip_batches, s.skip_batches);
  EXPECT_EQ(r.stalled_branch_fall, s.stalled_branch_fall);
  EXPECT_EQ(a.lr_ceiling.enabled, b.lr_ceiling.enabled);
  EXPECT_EQ(a.lr_ceiling.share, b.lr_ceiling.share);
  EXPECT_EQ(a.lr_ceiling.relax_steps, b.lr_ceiling.relax_steps);
  EXPECT_EQ(a.lr_ceiling.first_cap_hold_steps, b.lr_ceiling.first_cap_hold_steps);
  EXPECT_EQ(a.distributed.quorum, b.distributed.quorum);
  EXPECT_EQ(a.distributed.deadline_steps, b.distributed.deadline_steps);
  EXPECT_EQ(a.distributed.deadline_seconds, b.distributed.deadline_seconds);
  EXPECT_EQ(a.stale_after_seconds, b.stale_after_seconds);
}

TEST(NavigatorConfigToml, DefaultTomlEqualsTheStructDefaults) {
  const NavigatorConfig loaded = load_file(kSource / "configs/default.toml");
  expect_same(loaded, NavigatorConfig{});
  EXPECT_TRUE(NavigatorConfig{}.validate().empty());
  // A file without [controller] gives the same.
  expect_same(load_text("[daemon]\nmode = \"active\"\n"), NavigatorConfig{});
}

TEST(NavigatorConfigToml, EveryExampleProfileLoads) {
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(kSource / "configs/examples")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    NavigatorConfig c;
    ASSERT_NO_THROW(c = load_file(entry.path()));
    EXPECT_TRUE(c.validate().empty());
    ++loaded;
  }
  EXPECT_GE(loaded, 3);
  const NavigatorConfig aggressive = load_file(kSource / "configs/examples/aggressive.toml");
  EXPECT_EQ(aggressive.basin_map.size(), 5u);  // the example scorecard, found relative to the profile
  EXPECT_EQ(aggressive.basin_map.at("prose").verdict, Verdict::increase);
  EXPECT_EQ(aggressive.basin_map.at("data").basins.size(), 2u);
  EXPECT_EQ(aggressive.zones.at("dominant_ratio").band.good, 0.7);
  EXPECT_EQ(aggressive.zones.at("entropy").band.good, 1.0);  // untouched zones keep defaults
  EXPECT_EQ(aggressive.pid.critical.kp, 3.0);
  const NavigatorConfig scalars = load_file(kSource / "configs/examples/scalars-only.toml");
  EXPECT_EQ(scalars.zones.at("loss_z").band.danger, 5.0);
  EXPECT_EQ(scalars.filters.warmup_steps, 50);
}

struct BadCase {
  const char* toml;
  const char* key;
  const char* reason;  // a piece of the reason
};

TEST(NavigatorConfigToml, ErrorsNameFileKeyAndReason) {
  const BadCase cases[] = {
      {"controller = 3", "controller", "must be a table"},
      {"[controller]\nstale_after_seconds = \"60\"", "controller.stale_after_seconds", "must be a number"},
      {"[controller]\nstale_after_seconds = -1.0", "controller.stale_after_seconds", "must be in (0,"},
      {"[controller]\nstale_after_secs = 60.0", "controller.stale_after_secs", "unknown key"},
      {"[controller.signals]\naggregation = \"median\"", "controller.signals.aggregation", "\"worst\" or \"mean\""},
      {"[controller.signals]\nspectra = \"hidden\"", "controller.signals.spectra", "array of strings"},
      {"[controller.signals]\nspectra = [\"\"]", "controller.signals.spectra", "empty strings"},
      {"[controller.signals]\nsignature_dominant_ratio = 1.5", "controller.signals.signature_dominant_ratio",
       "must be in (0, 1]"},
      {"[controller.filters]\nmetric_alpha = 0", "controller.filters.metric_alpha", "must be in (0, 1]"},
      {"[controller.filters]\nwarmup_steps = 2.5", "controller.filters.warmup_steps", "must be an integer"},
      {"[controller.filters]\ntrend_window = 2", "controller.filters.trend_window", "must be in [3, 100000]"},
      {"[controller.filters]\nbogus = 1", "controller.filters.bogus", "unknown key"},
      {"[controller.filters]\nloss_jump_ratio = 0.8", "controller.filters.loss_jump_ratio", "0 (off) or > 1"},
      {"[controller.filters]\nloss_jump_grad_ratio = 1", "controller.filters.loss_jump_grad_ratio", "must be in (1,"},
      {"[controller.filters]\nloss_jump_arm_step = -1", "controller.filters.loss_jump_arm_step", "must be in [0,"},
      {"[controller.filters]\nloss_jump_min_noise_z = -1.0", "controller.filters.loss_jump_min_noise_z",
       "must be in [0,"},
      {"[controller.filters.cadence_noise]\nwarmup = 0", "controller.filters.cadence_noise.warmup", "must be in [1,"},
      {"[controller.filters.cadence_noise]\nwarmup = 50", "controller.filters.cadence_noise.warmup",
       "must be in [1, noise_window] (the window holds at most noise_window differences; got warmup = 50, "
       "noise_window = 40)"},
      {"[controller.filters.cadence_noise]\nnoise_window = 10", "controller.filters.cadence_noise.warmup",
       "must be in [1, noise_window]"},
      {"[controller.filters.cadence_noise]\nearly_warmup = 21", "controller.filters.cadence_noise.early_warmup",
       "must be in [1, warmup] (got early_warmup = 21, warmup = 20)"},
      {"[controller.filters.cadence_noise]\nmin_noise = 0", "controller.filters.cadence_noise.min_noise",
       "must be in (0,"},
      {"[controller.filters.cadence_noise]\ncadence_change = 1.0", "controller.filters.cadence_noise.cadence_change",
       "must be in (1,"},
      {"[controller.filters.cadence_noise]\nclip = \"4\"", "controller.filters.cadence_noise.clip", "must be a number"},
      {"[controller.filters.cadence_noise]\nwindow = 5", "controller.filters.cadence_noise.window", "unknown key"},
      {"[controller.zones.perplexity]\ngood = 1\ndanger = 2", "controller.zones.perplexity", "unknown metric"},
      {"[controller.zones.entropy]\ngood = 1.5\ndanger = 1.5", "controller.zones.entropy.danger", "must differ"},
      {"[controller.zones.entropy]\ngood = true", "controller.zones.entropy.good", "must be a number"},
      {"[controller.zones.effective_rank]\ngood = 4.0", "controller.zones.effective_rank.danger", "needs both"},
      {"[controller.zones.entropy]\nwarn = 1.8", "controller.zones.entropy.warn", "unknown key"},
      // Inverted zones: good and danger swapped relative to the metric's direction.
      {"[controller.zones.entropy]\ngood = 0.5\ndanger = 1.0", "controller.zones.entropy",
       "zone inverted: entropy is better higher, so good must be above danger (got good = 0.5, danger = 1)"},
      {"[controller.zones.dominant_ratio]\ngood = 0.9\ndanger = 0.8", "controller.zones.dominant_ratio",
       "zone inverted: dominant_ratio is better lower"},
      {"[controller.zones.loss_z]\ngood = 6.0\ndanger = 3.0", "controller.zones.loss_z", "zone inverted"},
      {"[controller.zones.effective_rank]\ngood = 2.0\ndanger = 8.0", "controller.zones.effective_rank",
       "zone inverted"},
      // Moving one line past the other's default inverts the zone too.
      {"[controller.zones.phi_proximity]\ndanger = 0.9", "controller.zones.phi_proximity", "zone inverted"},
      {"[[controller.basin_rules]]\nbasin = \"BLACK_HOLE\"\nmetrics = [\"entropy\"]",
       "controller.basin_rules[0].basin", "unknown basin 'BLACK_HOLE'"},
      {"[[controller.basin_rules]]\nbasin = \"CREATIVE\"\nmetrics = [\"entropy\"]", "controller.basin_rules[0].basin",
       "unknown basin 'CREATIVE'"},
      {"[[controller.basin_rules]]\nbasin = \"SEMANTIC_LOOP\"\nmetrics = [\"loop_rate\"]\n"
       "[[controller.basin_rules]]\nbasin = \"TOKEN_COLLAPSE\"\nmetrics = [\"rank\"]",
       "controller.basin_rules[1].metrics", "unknown metric 'rank'"},
      {"[[controller.basin_rules]]\nbasin = \"SEMANTIC_LOOP\"", "controller.basin_rules[0].metrics", "is required"},
      {"[[controller.basin_rules]]\nbasin = \"SEMANTIC_LOOP\"\nmetrics = [\"loop_rate\"]\nmin_zone = \"good\"",
       "controller.basin_rules[0].min_zone", "\"warning\" or \"danger\""},
      {"[controller]\nbasin_rules = 1", "controller.basin_rules", "array of tables"},
      {"[controller.states]\nconfirm_steps = 0", "controller.states.confirm_steps", "must be in [1,"},
      {"[controller.pid]\nsetpoint = 3.0", "controller.pid.setpoint", "must be in [0, 2]"},
      {"[controller.pid.warning]\nkp = -1", "controller.pid.warning.kp", "must be in [0, 100]"},
      {"[controller.pid.panic]\nkp = 1", "controller.pid.panic", "unknown key"},
      {"[controller.limits]\nmax_lr_change = 1.0", "controller.limits.max_lr_change", "must be in (1,"},
      {"[controller.limits]\nlr_scale_min = 0.5\nlr_scale_max = 0.2", "controller.limits.lr_scale_max",
       ">= lr_scale_min"},
      {"[controller.limits]\nexpiry_steps = 20", "controller.limits.expiry_steps", "expire before they are refreshed"},
      {"[controller.limits]\napply_lead_steps = 20", "controller.limits.max_apply_lead_steps", ">= apply_lead_steps"},
      {"[controller.reweight]\nrate = 2", "controller.reweight.rate", "must be in [0, 1]"},
      {"[[controller.curriculum.phases]]\nname = \"warmup\"", "controller.curriculum.phases[0].domains",
       "is required"},
      {"[[controller.curriculum.phases]]\ndomains = [\"a\"]\ncolor = \"red\"", "controller.curriculum.phases[0].color",
       "unknown key"},
      {"[controller.loss_weights]\ncollapse_max = -0.1", "controller.loss_weights.collapse_max", "must be in [0,"},
      {"[controller.rollback]\nenabled = \"yes\"", "controller.rollback.enabled", "true or false"},
      {"[controller.rollback]\nceiling_factor = 0", "controller.rollback.ceiling_factor", "must be in (0, 1]"},
      {"[controller.distributed]\nquorum = 0", "controller.distributed.quorum", "must be in (0, 1]"},
      {"[controller.distributed]\ndeadline_steps = 0", "controller.distributed.deadline_steps", "must be in [1,"},
      {"[controller.network]\nport = 1", "controller.network", "unknown key"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.toml);
    try {
      load_text(c.toml, "/etc/orbit/bad.toml");
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.file(), "/etc/orbit/bad.toml");
      EXPECT_EQ(e.key(), c.key);
      EXPECT_NE(e.reason().find(c.reason), std::string::npos) << e.reason();
      EXPECT_NE(std::string(e.what()).find(c.key), std::string::npos);
    }
  }
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("orbit-ctrl-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(NavigatorConfigToml, BasinMapIsFoundRelativeToTheConfigAndChecked) {
  TempDir dir;
  dir.write("map.toml", "[domains.web]\nbasins = [\"SEMANTIC_LOOP\"]\nverdict = \"remove\"\nweight = 2\n"
                        "[domains.books]\nbasins = [\"CREATIVE\"]\n");
  const auto config = dir.write("orbit.toml", "[controller]\nbasin_map = \"map.toml\"\n");
  const NavigatorConfig c = load_file(config);
  ASSERT_EQ(c.basin_map.size(), 2u);
  EXPECT_EQ(c.basin_map.at("web").verdict, Verdict::remove);
  EXPECT_EQ(*c.basin_map.at("web").weight, 2.0);
  EXPECT_EQ(c.basin_map.at("books").verdict, Verdict::analyse);
  EXPECT_EQ(c.basin_map_file, (dir.path() / "map.toml").lexically_normal().string());

  struct MapCase {
    const char* map;
    const char* key;
    const char* reason;
  };
  const MapCase cases[] = {
      {"[domains.web]\nbasins = [\"LOOPY\"]", "domains.web.basins", "unknown basin 'LOOPY'"},
      {"[domains.web]\nverdict = \"delete\"", "domains.web.verdict", "increase, reduce, remove, analyse"},
      {"[domains.web]\nweight = 0", "domains.web.weight", "must be in (0,"},
      {"[domains.web]\ntags = []", "domains.web.tags", "unknown key"},
      {"[domains]\nweb = 1", "domains.web", "must be a table"},
      {"[things.web]\nbasins = []", "things", "unknown key"},
  };
  for (const MapCase& m : cases) {
    SCOPED_TRACE(m.map);
    const auto map = dir.write("bad-map.toml", m.map);
    const auto cfg = dir.write("uses-bad-map.toml", "[controller]\nbasin_map = \"bad-map.toml\"\n");
    try {
      load_file(cfg);
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.file(), map.lexically_normal().string());  // the map file is named, not the config
      EXPECT_EQ(e.key(), m.key);
      EXPECT_NE(e.reason().find(m.reason), std::string::npos) << e.reason();
    }
  }
  const auto missing = dir.write("missing.toml", "[controller]\nbasin_map = \"nowhere.toml\"\n");
  try {
    load_file(missing);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), missing.string());
    EXPECT_EQ(e.key(), "controller.basin_map");
    EXPECT_NE(e.reason().find("no such file"), std::string::npos);
  }
  dir.write("broken-map.toml", "[domains.web\n");
  const auto broken = dir.write("uses-broken.toml", "[controller]\nbasin_map = \"broken-map.toml\"\n");
  try {
    load_file(broken);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.reason().find("TOML syntax error at line 1"), std::string::npos) << e.reason();
  }
}

TEST(NavigatorConfigToml, ZonesCanBeAddedChangedAndDropped) {
  const NavigatorConfig c = load_text(
      "[controller.zones.effective_rank]\ngood = 8.0\ndanger = 2.0\nalarm = false\n"
      "[controller.zones.phi_proximity]\nenabled = false\n"
      "[controller.zones.loop_rate]\ndanger = 0.4\n");
  EXPECT_EQ(c.zones.at("effective_rank").band.good, 8.0);
  EXPECT_FALSE(c.zones.at("effective_rank").alarm);
  EXPECT_FALSE(c.zones.count("phi_proximity"));
  EXPECT_EQ(c.zones.at("loop_rate").band.good, 0.25);  // the default, kept
  EXPECT_EQ(c.zones.at("loop_rate").band.danger, 0.4);
}

TEST(NavigatorConfigToml, PhasesAndRulesReplaceTheDefaults) {
  const NavigatorConfig c = load_text(
      "[[controller.basin_rules]]\nbasin = \"SEMANTIC_LOOP\"\nmetrics = [\"loop_rate\", \"entropy\"]\n"
      "min_zone = \"danger\"\n"
      "[controller.curriculum]\nadvance_after_stable_steps = 10\n"
      "[[controller.curriculum.phases]]\nname = \"easy\"\ndomains = [\"prose\"]\n"
      "[[controller.curriculum.phases]]\ndomains = [\"prose\", \"code\"]\n");
  ASSERT_EQ(c.basin_rules.size(), 1u);
  EXPECT_EQ(c.basin_rules[0].min_zone, Zone::danger);
  ASSERT_EQ(c.curriculum.phases.size(), 2u);
  EXPECT_EQ(c.curriculum.phases[0].name, "easy");
  EXPECT_EQ(c.curriculum.phases[1].domains.size(), 2u);
}

}  // namespace
}  // namespace orbit
