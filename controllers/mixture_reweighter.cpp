// SPDX-License-Identifier: Apache-2.0
#include "controllers/mixture_reweighter.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace orbit {

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::increase: return "increase";
    case Verdict::reduce: return "reduce";
    case Verdict::remove: return "remove";
    case Verdict::analyse: return "analyse";
  }
  return "analyse";
}

std::optional<Verdict> verdict_from_string(std::string_view name) {
  if (name == "increase") return Verdict::increase;
  if (name == "reduce") return Verdict::reduce;
  if (name == "remove") return Verdict::remove;
  if (name == "analyse" || name == "analyze") return Verdict::analyse;
  return std::nullopt;
}

void MixtureReweighter::project(std::vector<double>& w, double floor) {
  const std::size_t n = w.size();
  if (n == 0) return;
  const double f = std::min(std::max(floor, 0.0), 1.0 / static_cast<double>(n));
  for (double& x : w) {
    if (!std::isfinite(x) || x < 0.0) x = 0.0;
  }
  std::vector<bool> fixed(n, false);
  for (std::size_t round = 0; round <= n; ++round) {
    std::size_t n_fixed = 0;
    double free_mass = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      if (fixed[i]) {
        ++n_fixed;
      } else {
        free_mass += w[i];
      }
    }
    const double budget = 1.0 - f * static_cast<double>(n_fixed);
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (fixed[i]) {
        w[i] = f;
        continue;
      }
      w[i] = free_mass > 0.0 ? w[i] / free_mass * budget
                             : budget / static_cast<double>(n - n_fixed);
      if (w[i] < f) {
        fixed[i] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (fixed[i]) w[i] = f;
  }
}

void MixtureReweighter::set_domains(const std::vector<std::string>& domains,
                                    const std::map<std::string, DomainProfile>& profiles,
                                    const ReweightParams& params) {
  std::vector<std::string> names;
  for (const auto& d : domains) {
    if (std::find(names.begin(), names.end(), d) == names.end()) names.push_back(d);
  }
  std::vector<DomainProfile> new_profiles;
  std::vector<double> base, weights;
  // Base: the basin map's weights where given, the mean of those for the rest
  // (uniform when none is given).
  double given_sum = 0.0;
  std::size_t given = 0;
  for (const auto& d : names) {
    auto it = profiles.find(d);
    new_profiles.push_back(it == profiles.end() ? DomainProfile{} : it->second);
    if (new_profiles.back().weight) {
      given_sum += *new_profiles.back().weight;
      ++given;
    }
  }
  const double fill = given > 0 ? given_sum / static_cast<double>(given) : 1.0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    base.push_back(new_profiles[i].weight.value_or(fill));
  }
  project(base, params.floor);
  // Keep what the controller has done to domains that stay, and the observed base.
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto old = std::find(domains_.begin(), domains_.end(), names[i]);
    if (old != domains_.end()) {
      const auto k = static_cast<std::size_t>(old - domains_.begin());
      weights.push_back(weights_[k]);
      if (observed_) base[i] = base_[k];
    } else {
      weights.push_back(base[i]);
    }
  }
  if (observed_) project(base, params.floor);
  project(weights, params.floor);
  domains_ = std::move(names);
  profiles_ = std::move(new_profiles);
  base_ = std::move(base);
  weights_ = std::move(weights);
}

void MixtureReweighter::observe_base(const std::map<std::string, double>& reported, const ReweightParams& params) {
  if (observed_ || domains_.empty() || !at_base()) return;
  std::vector<double> base;
  for (const auto& d : domains_) {
    auto it = reported.find(d);
    if (it == reported.end() || !std::isfinite(it->second) || it->second < 0.0) return;
    base.push_back(it->second);
  }
  project(base, params.floor);
  base_ = base;
  weights_ = std::move(base);
  observed_ = true;
}

void MixtureReweighter::push_away(Basin basin, double pressure, const ReweightParams& params) {
  if (domains_.empty() || !(pressure > 0.0)) return;
  pressure = std::min(pressure, 1.0);
  bool moved = false;
  for (std::size_t i = 0; i < domains_.size(); ++i) {
    const DomainProfile& p = profiles_[i];
    const bool tagged = std::find(p.basins.begin(), p.basins.end(), basin) != p.basins.end();
    const bool creative = std::find(p.basins.begin(), p.basins.end(), Basin::creative) != p.basins.end();
    double strength = 0.0;
    if (tagged) {
      switch (p.verdict) {
        case Verdict::remove: strength = -2.0; break;
        case Verdict::reduce: strength = -1.0; break;
        case Verdict::increase: strength = -0.5; break;
        case Verdict::analyse: strength = 0.0; break;
      }
    } else if (creative && p.verdict != Verdict::analyse) {
      strength = 1.0;
    }
    if (strength != 0.0) {
      weights_[i] *= std::exp(strength * params.rate * pressure);
      moved = true;
    }
  }
  if (moved) project(weights_, params.floor);
}

bool MixtureReweighter::relax(const ReweightParams& params) {
  if (at_base()) return true;
  double worst = 0.0;
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    // Geometric interpolation: w^(1-r) · base^r, then renormalized.
    weights_[i] = std::pow(std::max(weights_[i], 1e-300), 1.0 - params.relax) *
                  std::pow(std::max(base_[i], 1e-300), params.relax);
  }
  project(weights_, params.floor);
  for (std::size_t i = 0; i < weights_.size(); ++i) worst = std::max(worst, std::abs(weights_[i] - base_[i]));
  if (worst < params.snap) weights_ = base_;
  return at_base();
}

std::map<std::string, double> MixtureReweighter::weights() const {
  std::map<std::string, double> out;
  for (std::size_t i = 0; i < domains_.size(); ++i) out[domains_[i]] = weights_[i];
  return out;
}

std::map<std::string, double> MixtureReweighter::base() const {
  std::map<std::string, double> out;
  for (std::size_t i = 0; i < domains_.size(); ++i) out[domains_[i]] = base_[i];
  return out;
}

}  // namespace orbit
