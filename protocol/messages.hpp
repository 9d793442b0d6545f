// SPDX-License-Identifier: Apache-2.0
#pragma once
// The vocabulary of Orbit: one struct per wire message type of protocol v1.
// Field names and meanings are fixed by protocol/SPEC.md; these structs are plain
// data so that controllers/ can use them without pulling in any codec or transport.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace orbit {

inline constexpr int kProtocolVersion = 1;

// Actuators an adapter may declare in `hello`.
inline constexpr std::string_view kActuators[] = {"lr", "domain_weights", "curriculum",
                                                  "loss_weights", "rollback"};

// What `hello.replies` may ask for (SPEC.md 3): one reply per snapshot, or news only.
inline constexpr std::string_view kRepliesEvery = "every";
inline constexpr std::string_view kRepliesNews = "news";

struct Hello {
  std::string run;
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  std::string adapter;
  std::string adapter_version;
  std::vector<std::int64_t> versions;
  std::vector<std::string> domains;
  std::vector<std::string> actuators;
  std::optional<double> base_lr;
  // "every" (one reply per snapshot, the default) or "news": the adapter asks for a
  // `state` reply only when it says something new (SPEC.md 3, "Replies on news").
  std::optional<std::string> replies;
};

struct Welcome {
  std::string run;
  std::int64_t rank = 0;
  std::string session;
  std::int64_t version = kProtocolVersion;
  std::string mode;  // "active" | "monitor"
  std::int64_t snapshot_every = 1;
  std::optional<std::int64_t> max_message_bytes;  // the daemon's limit; larger messages are refused
  std::optional<std::string> replies;             // "news" when the daemon grants hello.replies "news"
};

struct DomainStats {
  std::optional<double> loss;
  std::optional<double> weight;
};

struct Snapshot {
  std::string run;
  std::int64_t rank = 0;
  std::int64_t step = 0;
  double time = 0.0;  // Unix seconds, as seen by the trainer
  double loss = 0.0;  // may be non-finite: that is a signal, not an error
  std::optional<double> grad_norm;
  std::optional<double> lr;
  // The lr the trainer's own schedule sets for this step, before a burn's lr_scale
  // (lr = schedule_lr x lr_scale): the controller's absolute lr ceiling reads it.
  std::optional<double> schedule_lr;
  std::optional<std::int64_t> tokens;
  std::map<std::string, DomainStats> domains;
  std::map<std::string, std::vector<float>> spectra;
  std::optional<double> loop_rate;
  std::map<std::string, double> scalars;
};

struct State {
  std::string run;
  std::int64_t rank = 0;
  std::int64_t step = 0;
  std::string state;
  std::string basin;
  std::map<std::string, double> metrics;
  std::optional<std::int64_t> basin_age_steps;  // steps since the spectral evidence that named basin
};

struct Burn {
  std::string run;
  std::int64_t seq = 0;
  std::string state;
  std::string basin;
  std::string reason;
  std::int64_t for_step = 0;
  std::int64_t apply_at_step = 0;
  std::int64_t expires_after_steps = 0;
  double lr_scale = 1.0;
  std::map<std::string, double> domain_weights;
  std::optional<std::int64_t> curriculum_phase;
  std::map<std::string, double> loss_weights;
  std::optional<std::int64_t> rollback_to_step;
  std::optional<std::int64_t> skip_batches;
  std::optional<std::int64_t> basin_age_steps;  // steps since the spectral evidence that named basin
};

struct Ack {
  std::string run;
  std::int64_t rank = 0;
  std::int64_t seq = 0;
  std::int64_t step = 0;
  bool late = false;
  std::optional<double> lr;
  std::optional<std::int64_t> restored_step;
};

struct Heartbeat {
  std::optional<std::string> run;
  std::optional<std::int64_t> rank;
};

struct Bye {
  std::string run;
  std::int64_t rank = 0;
};

enum class ErrorCode {
  bad_message,
  unsupported_version,
  unknown_type,
  invalid_field,
  too_large,
  not_registered,
  internal,
};

std::string_view to_string(ErrorCode code);
std::optional<ErrorCode> error_code_from_string(std::string_view name);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::optional<std::string> ref;
};

// Published on the daemon's PUB socket once per processed snapshot (frame 1: the
// run id as topic, frame 2: this message). Not sent to adapters.
struct Telemetry {
  std::string run;
  std::int64_t rank = 0;
  std::int64_t step = 0;
  double time = 0.0;
  std::string mode;            // "active" | "monitor"
  std::string state;
  std::string basin;
  std::string forecast_basin;
  double lr_scale = 1.0;       // scale in effect from the latest burn (1.0 when none)
  std::map<std::string, double> metrics;
  std::optional<std::int64_t> burn_seq;  // set when this snapshot produced a burn
  std::string reason;          // the latest burn's or transition's reason ("" when none)
  std::optional<std::int64_t> basin_age_steps;  // steps since the spectral evidence that named basin
};

using Message =
    std::variant<Hello, Welcome, Snapshot, State, Burn, Ack, Heartbeat, Bye, Error, Telemetry>;

// The wire name (`type` key) of each alternative, in variant order.
std::string_view type_name(const Message& message);

}  // namespace orbit
