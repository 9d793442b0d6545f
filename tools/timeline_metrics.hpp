// SPDX-License-Identifier: Apache-2.0
#pragma once
// A replay timeline point's metrics: Decision::metrics kept as a list of values
// beside a list of names in the map's order, the names shared by every point that has
// the same ones (nearly all points of a run). Keeping each decision's std::map (20-40
// nodes and their names, allocated per point) cost more than the decision itself:
// `orbit replay` ran at ~1/3 of the replay without a timeline. The values are read
// straight from the Navigator's MetricSink (Navigator::last_metrics()).

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controllers/metric_report.hpp"

namespace orbit {

class TimelineMetrics {
 public:
  using Names = std::vector<std::string>;  // sorted as std::map<std::string, ...> sorts

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::pair<const std::string&, double>;
    using difference_type = std::ptrdiff_t;
    const_iterator() = default;
    const_iterator(const TimelineMetrics* m, std::size_t i) : m_(m), i_(i) {}
    value_type operator*() const { return {(*m_->names_)[i_], m_->values_[i_]}; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    const TimelineMetrics* m_ = nullptr;
    std::size_t i_ = 0;
  };

  TimelineMetrics() = default;
  // A decision's metrics, read from the Navigator's sink. `last_version`, `last_names`:
  // the previous point's names and their names_version(); reused while it is the same.
  TimelineMetrics(const MetricSink& metrics, std::uint64_t& last_version, std::shared_ptr<const Names>& last_names) {
    values_.resize(metrics.size());
    for (std::size_t k = 0; k < metrics.size(); ++k) values_[k] = metrics.value(k);
    if (!last_names || metrics.names_version() != last_version) {
      auto names = std::make_shared<Names>();
      names->reserve(metrics.size());
      for (std::size_t k = 0; k < metrics.size(); ++k) names->push_back(metrics.name(k));
      last_names = std::move(names);
      last_version = metrics.names_version();
    }
    if (!values_.empty()) names_ = last_names;
  }

  bool empty() const { return values_.empty(); }
  std::size_t size() const { return values_.size(); }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, values_.size()}; }
  // The value of `name`, or null.
  const double* find(std::string_view name) const {
    if (!names_) return nullptr;
    const auto it = std::lower_bound(names_->begin(), names_->end(), name,
                                     [](const std::string& a, std::string_view b) { return a < b; });
    if (it == names_->end() || *it != name) return nullptr;
    return &values_[static_cast<std::size_t>(it - names_->begin())];
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::map<std::string, double> to_map() const {
    std::map<std::string, double> out;
    for (const auto& [name, value] : *this) out.emplace_hint(out.end(), name, value);
    return out;
  }

 private:
  std::shared_ptr<const Names> names_;  // null when empty
  std::vector<double> values_;
};

}  // namespace orbit
