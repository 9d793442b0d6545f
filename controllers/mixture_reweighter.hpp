// SPDX-License-Identifier: Apache-2.0
#pragma once
// Data-mixture reweighting. Each declared domain carries basin tags and a verdict
// from the basin map (the data-quality scorecard). Heading toward basin B lowers
// the weights of the domains tagged with B by a bounded multiplicative update
// (exp(-rate·pressure·strength), strength by verdict: remove 2, reduce 1,
// increase 0.5, analyse 0) and raises domains tagged CREATIVE (exp(+rate·pressure));
// a stable run relaxes the weights geometrically toward the base mixture. Weights
// always sum to 1 and none falls below the floor (min(floor, 1/n)).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/basin.hpp"

namespace orbit {

enum class Verdict { increase, reduce, remove, analyse };

std::string_view to_string(Verdict verdict);
std::optional<Verdict> verdict_from_string(std::string_view name);

// One entry of the basin map.
struct DomainProfile {
  std::vector<Basin> basins;
  Verdict verdict = Verdict::analyse;
  std::optional<double> weight;  // base weight when the trainer does not report one
  std::string note;
};

struct ReweightParams {
  double rate = 0.1;     // log-weight step per closed step at full pressure
  double relax = 0.05;   // share of the (log) gap to the base closed per stable step
  double floor = 0.02;   // no weight below this (or 1/n when n·floor > 1)
  double snap = 0.002;   // within this of the base (every weight): exactly the base
};

class MixtureReweighter {
 public:
  // Declares the domains (order kept); weights of domains that stay are kept.
  void set_domains(const std::vector<std::string>& domains, const std::map<std::string, DomainProfile>& profiles,
                   const ReweightParams& params);
  // The trainer's own mixture, as reported in snapshots; adopted once, while the
  // weights are still at the base.
  void observe_base(const std::map<std::string, double>& reported, const ReweightParams& params);

  void push_away(Basin basin, double pressure, const ReweightParams& params);
  // Returns true when the weights are (now) exactly the base.
  bool relax(const ReweightParams& params);

  bool empty() const { return domains_.empty(); }
  bool at_base() const { return weights_ == base_; }
  bool observed_base() const { return observed_; }
  std::map<std::string, double> weights() const;
  std::map<std::string, double> base() const;
  const std::vector<std::string>& domains() const { return domains_; }

  // Normalizes to sum 1 with every weight >= min(floor, 1/n). Deterministic.
  static void project(std::vector<double>& w, double floor);

 private:
  std::vector<std::string> domains_;
  std::vector<DomainProfile> profiles_;
  std::vector<double> base_;
  std::vector<double> weights_;
  bool observed_ = false;
};

}  // namespace orbit
