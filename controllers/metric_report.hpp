// SPDX-License-Identifier: Apache-2.0
#pragma once
// Writing Decision::metrics. Every stage takes a MetricSink pointer that is null
// when the caller turned metrics off (Navigator::set_report_metrics): then nothing
// is built, which is most of what a decision would cost.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controllers/spectral_metrics.hpp"

namespace orbit {

// Wire names in Decision::metrics are bounded like every map key on the wire.
inline constexpr std::size_t kMaxMetricName = 128;

// One decision's metrics as the stages write them, then handed over as the map
// Decision::metrics. A decision writes the same names in the same order as the one
// before it (nearly always), so each name is kept once in a slot, in first-write
// order, and a write is found by comparing its name with the slot after the last
// one written; the map is then filled in name order by reusing the nodes of the
// previous decision's map when the caller hands it back (Navigator::recycle_metrics)
// and the names are the same. Looking each name up in the map itself cost ~40
// string-keyed tree searches per decision, more than the decision's own work.
// The result is the map the plain writes would give: for each name, the last
// finite value written since begin().
class MetricSink {
 public:
  // Starts a decision: nothing written yet.
  void begin() {
    ++epoch_;
    cursor_ = 0;
    // A run that keeps inventing names must not grow the slots without bound.
    if (slots_.size() > kMaxSlots) {
      slots_.clear();
      order_.clear();
      order_changed_ = true;
    }
  }

  // Finite values only; a later write of the same name replaces the earlier one.
  void put(std::string_view name, double value) {
    if (!std::isfinite(value) || name.size() > kMaxMetricName) return;
    Slot& slot = find_or_add(name);
    slot.value = value;
    slot.epoch = epoch_;
  }

  // The value written since begin() (throws std::out_of_range when none was).
  double at(std::string_view name) const {
    for (const Slot& s : slots_)
      if (s.epoch == epoch_ && s.name == name) return s.value;
    throw std::out_of_range("MetricSink::at: no metric " + std::string(name));
  }

  // Ends the decision: lists what was written since begin() in name order.
  void seal() {
    if (order_.size() != slots_.size()) sort_order();
    previous_.swap(written_);
    written_.clear();
    for (const std::uint32_t i : order_)
      if (slots_[i].epoch == epoch_) written_.push_back(i);
    if (written_ != previous_ || order_changed_) ++names_version_;
    order_changed_ = false;
  }

  // After seal(): the names written, in name order, and their values. names_version()
  // changes whenever that list of names differs from the previous decision's.
  std::size_t size() const { return written_.size(); }
  const std::string& name(std::size_t k) const { return slots_[written_[k]].name; }
  double value(std::size_t k) const { return slots_[written_[k]].value; }
  std::uint64_t names_version() const { return names_version_; }

  // After seal(): replaces the contents of `out` with what was written, in name order.
  // When `out` holds exactly those names (the previous decision's map, handed back),
  // only the values are assigned: no node is allocated.
  void finish(std::map<std::string, double>& out) const {
    if (out.size() == written_.size()) {
      auto it = out.begin();
      bool same = true;
      for (std::size_t k = 0; k < written_.size() && same; ++k, ++it) same = it->first == name(k);
      if (same) {
        it = out.begin();
        for (std::size_t k = 0; k < written_.size(); ++k, ++it) it->second = value(k);
        return;
      }
    }
    out.clear();
    for (std::size_t k = 0; k < written_.size(); ++k) out.emplace_hint(out.end(), name(k), value(k));
  }

 private:
  static constexpr std::size_t kMaxSlots = 4096;
  struct Slot {
    std::string name;
    double value = 0.0;
    std::uint64_t epoch = 0;  // the decision that last wrote it
  };

  Slot& find_or_add(std::string_view name) {
    // The next slot is almost always the one; else search on from it, then from the start.
    const std::size_t n = slots_.size();
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = cursor_ + k;
      if (i >= n) i -= n;
      if (slots_[i].name == name) {
        cursor_ = i + 1;
        return slots_[i];
      }
    }
    slots_.push_back({std::string(name), 0.0, 0});
    cursor_ = slots_.size();
    return slots_.back();
  }

  void sort_order() {
    order_changed_ = true;  // slot indices now mean other names than the last seal()'s
    order_.resize(slots_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::uint32_t>(i);
    std::sort(order_.begin(), order_.end(),
              [&](std::uint32_t a, std::uint32_t b) { return slots_[a].name < slots_[b].name; });
  }

  std::vector<Slot> slots_;                        // in first-write order
  std::vector<std::uint32_t> order_;               // slot indices in name order (the map's)
  std::size_t cursor_ = 0;                         // the slot after the last one written
  std::uint64_t epoch_ = 1;                        // usable without begin() (tests)
  std::vector<std::uint32_t> written_, previous_;  // slots written, name order: this and the last seal()
  std::uint64_t names_version_ = 0;
  bool order_changed_ = false;
};

// Finite values only (a null sink: metrics are off).
inline void put_metric(MetricSink* metrics, std::string_view name, double value) {
  if (metrics) metrics->put(name, value);
}

// `spectrum`: the spectrum's name ("hidden.0" -> "hidden.0.entropy"); none for the aggregate.
inline void put_spectral_metrics(MetricSink* metrics, const std::string* spectrum, const SpectralMetrics& m) {
  if (!metrics) return;
  std::string key;  // one buffer for the five names: no temporary per name
  if (spectrum) (key = *spectrum) += '.';
  const std::size_t stem = key.size();
  for (const auto& [suffix, value] : {std::pair{"entropy", m.entropy}, std::pair{"effective_rank", m.effective_rank},
                                      std::pair{"normalized_entropy", m.normalized_entropy},
                                      std::pair{"dominant_ratio", m.dominant_ratio},
                                      std::pair{"phi_proximity", m.phi_proximity}}) {
    key.resize(stem);
    key += suffix;
    put_metric(metrics, key, value);
  }
}

}  // namespace orbit
