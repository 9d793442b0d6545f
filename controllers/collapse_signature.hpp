// SPDX-License-Identifier: Apache-2.0
#pragma once
// The early collapse signature (issue 3): on a signature spectrum (signals.
// signature_spectra) the dominant ratio above signature_dominant_ratio or the
// effective rank below signature_effective_rank. Early in training (steps below
// signature_early_steps) it counts only once it has held signature_confirm_steps
// steps on consecutive probes and the run corroborates it (controllers/
// early_corroboration.hpp: its loss stalls or its attention logits blow up); later
// it counts at its first sighting.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controllers/finding.hpp"
#include "controllers/metric_report.hpp"
#include "controllers/navigator_config.hpp"
#include "controllers/spectral_metrics.hpp"

namespace orbit {

struct SignatureReading {
  bool confirmed = false;  // counts this step: a critical finding was added
  std::string text;        // what was seen ("hidden.0 dominant ratio 0.95 > 0.9"), when seen
};

class CollapseSignature {
 public:
  // What spectrum `name` shows, or nullopt when it shows no signature.
  static std::optional<std::string> sighting(const std::string& name, const SpectralMetrics& metrics,
                                             const SignalConfig& signals);

  // One closed step. `checked`: the step carried a valid signature spectrum;
  // `seen`: the first sighting among them (nullopt: none). Adds the critical
  // finding once confirmed; while an early sighting waits, writes
  // signature_held_steps to `metrics` (when not null). `corroborated`: the run
  // corroborates an early sighting at this step (EarlyCorroboration).
  SignatureReading update(std::int64_t step, bool checked, std::optional<std::string> seen, const SignalConfig& signals,
                          MetricSink* metrics, std::vector<Finding>& findings, bool corroborated = true);

  // First step of the current run of sightings (nullopt: none running).
  const std::optional<std::int64_t>& since() const { return since_; }
  void reset() { since_.reset(); }

 private:
  std::optional<std::int64_t> since_;
};

}  // namespace orbit
