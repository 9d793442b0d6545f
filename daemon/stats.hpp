// SPDX-License-Identifier: Apache-2.0
#pragma once
// Every counter orbitd keeps, listed once (ORBIT_DAEMON_STATS below): the struct's
// fields, the control endpoint's `status` reply (by field name; tests assert on
// those names), the shutdown log line and GET /metrics all come from that list.

#include <cstdint>

namespace orbit {

// The Prometheus families the counters are exported as: F(family, help). A family
// holds one quantity; counters that split it carry a label (ORBIT_DAEMON_STATS).
#define ORBIT_STAT_FAMILIES(F)                                                                                     \
  F("orbitd_messages_received_total", "Messages read on the adapter socket, decodable or not.")                   \
  F("orbitd_messages_decoded_total", "Valid adapter messages handled, by type.")                                  \
  F("orbitd_messages_sent_total", "Replies sent to adapters, by type.")                                           \
  F("orbitd_states_withheld_total", "State replies not sent to news-only adapters (hello.replies news): nothing new.") \
  F("orbitd_errors_total", "Error replies sent to adapters, by error code (protocol/SPEC.md 5.9).")                \
  F("orbitd_burns_total", "Burns issued: decided by a controller or forced over the control endpoint.")          \
  F("orbitd_replies_dropped_total", "Replies dropped because the adapter was gone or its queue full.")           \
  F("orbitd_telemetry_messages_total", "Telemetry messages, by outcome: published or dropped (no reader keeping up).") \
  F("orbitd_sessions_opened_total", "(run, rank) sessions opened by a hello.")                                    \
  F("orbitd_sessions_ended_total", "(run, rank) sessions ended, by reason: closed (bye) or expired (silence).")    \
  F("orbitd_runs_opened_total", "Runs given a controller (new, or recovered from the journal).")                  \
  F("orbitd_runs_rejected_total", "Hellos refused a new run (a daemon limit such as max_runs).")                 \
  F("orbitd_sessions_rejected_total", "Hellos refused a new session (daemon.max_sessions).")                      \
  F("orbitd_control_requests_total", "Requests on the control endpoint.")                                         \
  F("orbitd_control_errors_total", "Control requests answered with an error.")                                    \
  F("orbitd_config_reloads_total", "Config reloads attempted (SIGHUP or control `reload`).")                       \
  F("orbitd_config_reload_failures_total", "Config reloads refused (the running config kept).")                   \
  F("orbitd_journal_records_total", "Records appended to the journal.")                                           \
  F("orbitd_journal_errors_total", "Journal appends that failed.")                                                \
  F("orbitd_http_requests_total", "HTTP requests served.")                                                        \
  F("orbitd_http_rejected_total", "HTTP connections refused: malformed, too large, too slow, or too many at once.") \
  F("orbitd_foreign_messages_rejected_total", "Messages for a session from a connection that does not hold it.")   \
  F("orbitd_foreign_key_rejected_total", "Hellos refused because their run belongs to another CURVE client key.")   \
  F("orbitd_sessions_taken_over_total", "Hellos that moved a session off a closed or expired connection.")          \
  F("orbitd_runs_retired_total", "Idle runs unloaded (their journal stays; a hello brings them back).")            \
  F("orbitd_journal_records_lost_total", "Journal appends that failed (a full or failing disk).")                   \
  F("orbitd_journal_writes_total", "write(2) calls that appended journal records: one per run file per batch of adapter messages.") \
  F("orbitd_reply_batches_total", "Groups of adapter replies handed to ZeroMQ back to back: at most one per batch of adapter messages (32 replies), one per reply sent outside a batch.") \
  F("orbitd_journal_gaps_total", "Gap records written once journal appends worked again.")                        \
  F("orbitd_auth_refused_total", "Clients refused by the ZAP handler (a CURVE key not on the allow-list, or another user on an ipc control socket), by endpoint.") \
  F("orbitd_auth_accepted_total", "Clients let in by the ZAP handler (CURVE, or the owner on an ipc control socket), by endpoint.") \
  F("orbitd_http_unauthorized_total", "HTTP requests refused for a missing or wrong bearer token.")

// Every counter: X(field, family, label name, label value); "" for no label.
#define ORBIT_DAEMON_STATS(X)                                                         \
  X(messages_received, "orbitd_messages_received_total", "", "")                      \
  X(hellos, "orbitd_messages_decoded_total", "type", "hello")                         \
  X(snapshots, "orbitd_messages_decoded_total", "type", "snapshot")                   \
  X(acks, "orbitd_messages_decoded_total", "type", "ack")                             \
  X(heartbeats, "orbitd_messages_decoded_total", "type", "heartbeat")                 \
  X(byes, "orbitd_messages_decoded_total", "type", "bye")                             \
  X(welcomes_sent, "orbitd_messages_sent_total", "type", "welcome")                   \
  X(states_sent, "orbitd_messages_sent_total", "type", "state")                       \
  X(states_withheld, "orbitd_states_withheld_total", "", "")                          \
  X(burns_sent, "orbitd_messages_sent_total", "type", "burn")                         \
  X(errors_sent, "orbitd_messages_sent_total", "type", "error")                       \
  X(burns_decided, "orbitd_burns_total", "origin", "decided")                         \
  X(burns_forced, "orbitd_burns_total", "origin", "forced")                           \
  X(error_bad_message, "orbitd_errors_total", "code", "bad_message")                  \
  X(error_unsupported_version, "orbitd_errors_total", "code", "unsupported_version")  \
  X(error_unknown_type, "orbitd_errors_total", "code", "unknown_type")                \
  X(error_invalid_field, "orbitd_errors_total", "code", "invalid_field")              \
  X(error_too_large, "orbitd_errors_total", "code", "too_large")                      \
  X(error_not_registered, "orbitd_errors_total", "code", "not_registered")            \
  X(error_internal, "orbitd_errors_total", "code", "internal")                        \
  X(replies_dropped, "orbitd_replies_dropped_total", "", "")                          \
  X(telemetry_published, "orbitd_telemetry_messages_total", "outcome", "published")   \
  X(telemetry_dropped, "orbitd_telemetry_messages_total", "outcome", "dropped")       \
  X(sessions_opened, "orbitd_sessions_opened_total", "", "")                          \
  X(sessions_expired, "orbitd_sessions_ended_total", "reason", "expired")             \
  X(sessions_closed, "orbitd_sessions_ended_total", "reason", "closed")               \
  X(runs_opened, "orbitd_runs_opened_total", "", "")                                  \
  X(runs_rejected, "orbitd_runs_rejected_total", "", "")                              \
  X(sessions_rejected, "orbitd_sessions_rejected_total", "", "")                      \
  X(control_requests, "orbitd_control_requests_total", "", "")                        \
  X(control_errors, "orbitd_control_errors_total", "", "")                            \
  X(config_reloads, "orbitd_config_reloads_total", "", "")                            \
  X(config_reload_failures, "orbitd_config_reload_failures_total", "", "")            \
  X(journal_records, "orbitd_journal_records_total", "", "")                          \
  X(journal_errors, "orbitd_journal_errors_total", "", "")                            \
  X(http_requests, "orbitd_http_requests_total", "", "")                              \
  X(http_rejected, "orbitd_http_rejected_total", "", "")                              \
  X(foreign_rejected, "orbitd_foreign_messages_rejected_total", "", "")               \
  X(foreign_key_rejected, "orbitd_foreign_key_rejected_total", "", "")                \
  X(sessions_taken_over, "orbitd_sessions_taken_over_total", "", "")                  \
  X(runs_retired, "orbitd_runs_retired_total", "", "")                                \
  X(journal_records_lost, "orbitd_journal_records_lost_total", "", "")                \
  X(journal_gaps, "orbitd_journal_gaps_total", "", "")                                \
  X(journal_writes, "orbitd_journal_writes_total", "", "")                            \
  X(reply_batches, "orbitd_reply_batches_total", "", "")                              \
  X(auth_refused_adapters, "orbitd_auth_refused_total", "endpoint", "adapters")       \
  X(auth_refused_telemetry, "orbitd_auth_refused_total", "endpoint", "telemetry")     \
  X(auth_refused_control, "orbitd_auth_refused_total", "endpoint", "control")         \
  X(auth_accepted_adapters, "orbitd_auth_accepted_total", "endpoint", "adapters")     \
  X(auth_accepted_telemetry, "orbitd_auth_accepted_total", "endpoint", "telemetry")   \
  X(auth_accepted_control, "orbitd_auth_accepted_total", "endpoint", "control")       \
  X(http_unauthorized, "orbitd_http_unauthorized_total", "", "")

// How one counter is exported: its Prometheus family and the label that tells it
// apart from the family's other counters (empty name: the family's only series).
struct StatExport {
  const char* family;
  const char* label_name;
  const char* label_value;
};

// A plain struct of counters (Envoy style); replies_dropped never blocks the loop:
// the peer is gone or its queue full.
struct DaemonStats {
#define ORBIT_STAT_FIELD(field, family, label_name, label_value) std::uint64_t field = 0;
  ORBIT_DAEMON_STATS(ORBIT_STAT_FIELD)
#undef ORBIT_STAT_FIELD

  // v(field name, value) for every counter, in the list's order.
  template <class Visitor>
  void for_each(Visitor&& v) const {
#define ORBIT_STAT_VISIT(field, family, label_name, label_value) v(#field, field);
    ORBIT_DAEMON_STATS(ORBIT_STAT_VISIT)
#undef ORBIT_STAT_VISIT
  }

  // v(field name, value, StatExport) for every counter, in the list's order.
  template <class Visitor>
  void for_each_export(Visitor&& v) const {
#define ORBIT_STAT_EXPORT(field, family, label_name, label_value) \
  v(#field, field, StatExport{family, label_name, label_value});
    ORBIT_DAEMON_STATS(ORBIT_STAT_EXPORT)
#undef ORBIT_STAT_EXPORT
  }
};

// The help text of a family named in ORBIT_DAEMON_STATS ("" for an unknown name).
constexpr const char* stat_family_help(const char* family) {
  auto same = [](const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
  };
#define ORBIT_STAT_HELP(name, help) \
  if (same(family, name)) return help;
  ORBIT_STAT_FAMILIES(ORBIT_STAT_HELP)
#undef ORBIT_STAT_HELP
  return "";
}

}  // namespace orbit
