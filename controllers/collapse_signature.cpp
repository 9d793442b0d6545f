// SPDX-License-Identifier: Apache-2.0
#include "controllers/collapse_signature.hpp"

#include "controllers/decision_text.hpp"
#include "controllers/metric_report.hpp"

namespace orbit {

std::optional<std::string> CollapseSignature::sighting(const std::string& name, const SpectralMetrics& sm,
                                                       const SignalConfig& sc) {
  if (sm.dominant_ratio > sc.signature_dominant_ratio) {
    return name + " dominant ratio " + num(sm.dominant_ratio) + " > " + num(sc.signature_dominant_ratio);
  }
  if (sm.effective_rank < sc.signature_effective_rank) {
    return name + " effective rank " + num(sm.effective_rank) + " < " + num(sc.signature_effective_rank);
  }
  return std::nullopt;
}

SignatureReading CollapseSignature::update(std::int64_t step, bool checked, std::optional<std::string> seen,
                                           const SignalConfig& sc, MetricSink* m, std::vector<Finding>& findings,
                                           bool corroborated) {
  SignatureReading out;
  // A step counter that went back (a rollback) starts the count again.
  if (since_ && step < *since_) since_.reset();
  if (checked) {
    if (!seen) since_.reset();
    else if (!since_) since_ = step;
  }
  if (!seen) return out;
  out.text = std::move(*seen);
  const std::int64_t held = step - *since_;
  if (step < sc.signature_early_steps && (held < sc.signature_confirm_steps || !corroborated)) {
    put_metric(m, "signature_held_steps", static_cast<double>(held));
    return out;  // seen, not yet confirmed (or a healthy transient's): no finding, no burn
  }
  if (held > 0) out.text += " (held " + std::to_string(held) + " steps)";
  findings.push_back({Severity::critical, "collapse signature: " + out.text, "signature"});
  out.confirmed = true;
  return out;
}

}  // namespace orbit
