// SPDX-License-Identifier: Apache-2.0
#pragma once
// The payload codecs of the journal's own record types (those that are not a wire
// message: rank_silent, evaluation). The framing (length, CRC, type, time) is
// protocol/journal_record.hpp; wire messages are protocol/codec.hpp.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace orbit {

// Payload of a rank_silent record.
struct RankSilent {
  std::int64_t rank = 0;
  double time = 0.0;
};
std::string encode_rank_silent(const RankSilent& event);
std::optional<RankSilent> decode_rank_silent(std::string_view payload);

// Payload of an evaluation record (an imported evaluation row):
// {"step": int, "time": float, "metrics": {name: float}}.
struct Evaluation {
  std::int64_t step = 0;
  double time = 0.0;
  std::map<std::string, double> metrics;
};
std::string encode_evaluation(const Evaluation& e);
// nullopt when the payload is not a MessagePack map; unknown keys are ignored.
std::optional<Evaluation> decode_evaluation(std::string_view payload);

}  // namespace orbit
