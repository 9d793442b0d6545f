// SPDX-License-Identifier: Apache-2.0
#pragma once
// One run's dashboard history, kept compact: per decided step a fixed record (step,
// time, lr scale, basin age, and the state/basin names and metric-name list as
// indices into tables the runs share) plus its metric values, 8 bytes each. The
// JSON of a point is written when asked for, byte for byte what point_json() gives
// for the same snapshot and decision (the dashboard's /history route and its live
// events read the same text). A point with a burn or events, or whose names would
// grow the shared tables past their caps, is kept as its JSON instead.
//
// About 60 bytes plus 8 per metric a point, against the ~600 of its JSON.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controllers/navigator.hpp"
#include "protocol/messages.hpp"

namespace orbit {

// The JSON object of one decided step as the dashboard serves it.
std::string point_json(const Snapshot& snapshot, const Decision& decision);

// Names shared by every run of a feed: state and basin names, and the lists of
// metric names (a decision's metrics, in map order). Bounded: past the caps, a
// lookup answers `kNone` and the point is kept as JSON.
class PointNames {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  static constexpr std::size_t kMaxStrings = 4096;
  static constexpr std::size_t kMaxLists = 1024;

  std::uint32_t string_id(const std::string& s);
  std::uint32_t list_id(const std::map<std::string, double>& metrics);
  const std::string& string(std::uint32_t id) const { return strings_[id]; }
  const std::vector<std::string>& list(std::uint32_t id) const { return lists_[id]; }
  std::size_t strings() const { return strings_.size(); }
  std::size_t lists() const { return lists_.size(); }

 private:
  std::vector<std::string> strings_;
  std::map<std::string, std::uint32_t, std::less<>> string_ids_;
  std::vector<std::vector<std::string>> lists_;
  std::map<std::vector<std::string>, std::uint32_t> list_ids_;
};

class PointHistory {
 public:
  explicit PointHistory(std::shared_ptr<PointNames> names) : names_(std::move(names)) {}

  // Appends the point of (snapshot, decision).
  void push(const Snapshot& snapshot, const Decision& decision);
  void pop_front();
  std::size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  // Appends the points, oldest first, as JSON objects separated by commas.
  void append_json(std::string& out) const;
  // Points kept as JSON (a burn, events, or names past the tables' caps).
  std::size_t verbatim() const { return verbatim_.size(); }

 private:
  struct Record {
    std::int64_t step = 0;
    double time = 0.0;
    double lr_scale = 0.0;
    std::int64_t basin_age = 0;
    std::uint32_t state = 0, basin = 0, forecast_basin = 0;
    std::uint32_t metrics = PointNames::kNone;  // list id; kNone: the point is in verbatim_
    bool has_basin_age = false;
  };
  void append_record_json(const Record& r, std::size_t first_value, std::string& out) const;

  std::shared_ptr<PointNames> names_;
  std::string run_;
  std::deque<Record> records_;
  std::deque<double> values_;         // every record's metric values, in order
  std::deque<std::string> verbatim_;  // the JSON of the records with metrics == kNone, in order
};

}  // namespace orbit
