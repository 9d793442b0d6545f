// SPDX-License-Identifier: Apache-2.0
// The dashboard's compact history serves the same JSON as point_json() gives for
// each point, and its shared name tables stay bounded (points past the caps are
// kept as JSON and still served the same).

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "dashboard/point_history.hpp"

namespace orbit {
namespace {

struct Point {
  Snapshot snapshot;
  Decision decision;
};

Point make_point(std::int64_t step) {
  Point p;
  p.snapshot.run = "run-a";
  p.snapshot.step = step;
  p.snapshot.time = 1.7e9 + 0.1 * static_cast<double>(step) + 1e-7;
  Decision& d = p.decision;
  d.state = step % 7 == 3 ? "WATCH" : "STABLE";
  d.basin = step % 11 == 0 ? "UNKNOWN" : "CONVERGING";
  d.forecast_basin = "STABLE_MINIMUM";
  if (step % 3 != 0) d.basin_age_steps = step / 3;
  d.lr_scale = 1.0 - 1.0 / static_cast<double>(step + 3);
  d.metrics["loss_z"] = std::sin(static_cast<double>(step)) * 1e-3;
  d.metrics["grad_norm_ratio"] = 1.0 / 3.0 + static_cast<double>(step);
  if (step % 10 == 0) {  // a probe step: the spectral metrics too
    d.metrics["entropy"] = 5.123456789012345;
    d.metrics["effective_rank"] = 1e-300 * static_cast<double>(step + 1);
  }
  if (step % 13 == 5) {
    Burn b;
    b.seq = step;
    b.lr_scale = 0.5;
    b.reason = "spike \"quoted\"";
    b.apply_at_step = step + 2;
    if (step % 2) b.rollback_to_step = step - 4;
    d.burn = b;
  }
  if (step % 17 == 4) d.events = {"STABLE -> WATCH", "alarm: loss"};
  return p;
}

std::string joined(const std::vector<Point>& points, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < points.size(); ++i) {
    if (i > from) out += ',';
    out += point_json(points[i].snapshot, points[i].decision);
  }
  return out;
}

std::string served(const PointHistory& h) {
  std::string out;
  h.append_json(out);
  return out;
}

TEST(PointHistory, ServesTheSameJsonAsEachPointsOwn) {
  PointHistory h(std::make_shared<PointNames>());
  std::vector<Point> points;
  for (std::int64_t step = 0; step < 200; ++step) {
    points.push_back(make_point(step));
    h.push(points.back().snapshot, points.back().decision);
  }
  ASSERT_EQ(h.size(), 200u);
  EXPECT_EQ(served(h), joined(points, 0));
  EXPECT_GT(h.verbatim(), 0u) << "points with a burn or events are kept as JSON";
  EXPECT_LT(h.verbatim(), 40u) << "the plain points are compact";
  // The oldest leave first; what stays is served the same.
  for (int i = 0; i < 57; ++i) h.pop_front();
  EXPECT_EQ(h.size(), 143u);
  EXPECT_EQ(served(h), joined(points, 57));
  for (int i = 0; i < 143; ++i) h.pop_front();
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(served(h), "");
  h.pop_front();  // on empty: nothing
  EXPECT_TRUE(h.empty());
}

TEST(PointHistory, NameTablesStayBoundedAndPointsPastThemAreServedTheSame) {
  auto names = std::make_shared<PointNames>();
  PointHistory h(names);
  std::vector<Point> points;
  // Every point with its own metric names (a client inventing spectrum names): the
  // shared tables fill to their caps, then points are kept as JSON.
  const std::size_t n = PointNames::kMaxLists + 50;
  for (std::size_t i = 0; i < n; ++i) {
    Point p = make_point(static_cast<std::int64_t>(i) * 10 + 1);  // no burn, no events
    p.decision.burn.reset();
    p.decision.events.clear();
    p.decision.metrics["spectrum." + std::to_string(i) + ".entropy"] = static_cast<double>(i);
    points.push_back(p);
    h.push(p.snapshot, p.decision);
  }
  EXPECT_EQ(names->lists(), PointNames::kMaxLists);
  EXPECT_EQ(h.verbatim(), 50u);
  EXPECT_EQ(served(h), joined(points, 0));
  for (std::size_t i = 0; i < n - 60; ++i) h.pop_front();
  EXPECT_EQ(served(h), joined(points, n - 60));

  for (std::size_t i = 0; i < PointNames::kMaxStrings + 10; ++i) names->string_id("state-" + std::to_string(i));
  EXPECT_EQ(names->strings(), PointNames::kMaxStrings);
  EXPECT_EQ(names->string_id("never-seen"), PointNames::kNone);
  Point odd = make_point(1);
  odd.decision.state = "ANOTHER";
  h.push(odd.snapshot, odd.decision);
  points.push_back(odd);
  EXPECT_EQ(served(h), joined(points, n - 60)) << "a state past the string cap is served from its JSON";
}

}  // namespace
}  // namespace orbit
