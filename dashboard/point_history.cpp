// SPDX-License-Identifier: Apache-2.0
#include "dashboard/point_history.hpp"

#include "protocol/json_writer.hpp"

namespace orbit {

namespace {

// The fields before "metrics", shared by point_json() and the compact records so
// both write the same bytes.
void write_head(JsonWriter& w, const std::string& run, std::int64_t step, double time, const std::string& state,
                const std::string& basin, const std::string& forecast_basin, const std::optional<std::int64_t>& age,
                double lr_scale) {
  w.begin_object();
  w.field("run", run).field("step", step).field("time", time);
  w.field("state", state).field("basin", basin).field("forecast_basin", forecast_basin);
  if (age) w.field("basin_age_steps", *age);
  w.field("lr_scale", lr_scale);
  w.key("metrics").begin_object();
}

}  // namespace

std::string point_json(const Snapshot& s, const Decision& d) {
  JsonWriter w;
  write_head(w, s.run, s.step, s.time, d.state, d.basin, d.forecast_basin, d.basin_age_steps, d.lr_scale);
  for (const auto& [name, v] : d.metrics) w.field(name, v);
  w.end_object();
  if (d.burn) {
    w.key("burn").begin_object();
    w.field("seq", d.burn->seq).field("lr_scale", d.burn->lr_scale).field("reason", d.burn->reason);
    w.field("apply_at_step", d.burn->apply_at_step);
    if (d.burn->rollback_to_step) w.field("rollback_to_step", *d.burn->rollback_to_step);
    w.end_object();
  }
  if (!d.events.empty()) {
    w.key("events").begin_array();
    for (const auto& e : d.events) w.value(e);
    w.end_array();
  }
  w.end_object();
  return w.take();
}

std::uint32_t PointNames::string_id(const std::string& s) {
  if (auto it = string_ids_.find(s); it != string_ids_.end()) return it->second;
  if (strings_.size() >= kMaxStrings) return kNone;
  const auto id = static_cast<std::uint32_t>(strings_.size());
  strings_.push_back(s);
  string_ids_.emplace(s, id);
  return id;
}

std::uint32_t PointNames::list_id(const std::map<std::string, double>& metrics) {
  std::vector<std::string> names;
  names.reserve(metrics.size());
  for (const auto& [name, _] : metrics) names.push_back(name);
  if (auto it = list_ids_.find(names); it != list_ids_.end()) return it->second;
  if (lists_.size() >= kMaxLists) return kNone;
  const auto id = static_cast<std::uint32_t>(lists_.size());
  lists_.push_back(names);
  list_ids_.emplace(std::move(names), id);
  return id;
}

void PointHistory::push(const Snapshot& snapshot, const Decision& decision) {
  if (records_.empty() && verbatim_.empty()) run_ = snapshot.run;
  Record r;
  r.step = snapshot.step;
  r.time = snapshot.time;
  r.lr_scale = decision.lr_scale;
  r.has_basin_age = decision.basin_age_steps.has_value();
  r.basin_age = decision.basin_age_steps.value_or(0);
  const bool plain = !decision.burn && decision.events.empty() && snapshot.run == run_;
  if (plain) {
    r.state = names_->string_id(decision.state);
    r.basin = names_->string_id(decision.basin);
    r.forecast_basin = names_->string_id(decision.forecast_basin);
    if (r.state != PointNames::kNone && r.basin != PointNames::kNone && r.forecast_basin != PointNames::kNone)
      r.metrics = names_->list_id(decision.metrics);
  }
  if (r.metrics == PointNames::kNone) {
    verbatim_.push_back(point_json(snapshot, decision));
  } else {
    for (const auto& [_, v] : decision.metrics) values_.push_back(v);
  }
  records_.push_back(r);
}

void PointHistory::pop_front() {
  if (records_.empty()) return;
  const Record& r = records_.front();
  if (r.metrics == PointNames::kNone) {
    verbatim_.pop_front();
  } else {
    values_.erase(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(names_->list(r.metrics).size()));
  }
  records_.pop_front();
}

void PointHistory::append_record_json(const Record& r, std::size_t first_value, std::string& out) const {
  JsonWriter w;
  write_head(w, run_, r.step, r.time, names_->string(r.state), names_->string(r.basin),
             names_->string(r.forecast_basin),
             r.has_basin_age ? std::optional<std::int64_t>(r.basin_age) : std::nullopt, r.lr_scale);
  const auto& names = names_->list(r.metrics);
  for (std::size_t i = 0; i < names.size(); ++i) w.field(names[i], values_[first_value + i]);
  w.end_object();
  w.end_object();
  out += w.take();
}

void PointHistory::append_json(std::string& out) const {
  std::size_t value = 0, verbatim = 0;
  bool first = true;
  for (const Record& r : records_) {
    if (!first) out += ',';
    first = false;
    if (r.metrics == PointNames::kNone) {
      out += verbatim_[verbatim++];
    } else {
      append_record_json(r, value, out);
      value += names_->list(r.metrics).size();
    }
  }
}

}  // namespace orbit
