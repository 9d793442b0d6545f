// SPDX-License-Identifier: Apache-2.0
#pragma once
// Every counter orbitd keeps, in one plain struct (Envoy style): the control
// endpoint's `status` dumps it by name and tests assert on those names.

#include <cstdint>

namespace orbit {

struct DaemonStats {
  std::uint64_t messages_received = 0;
  std::uint64_t hellos = 0;
  std::uint64_t snapshots = 0;
  std::uint64_t acks = 0;
  std::uint64_t heartbeats = 0;
  std::uint64_t byes = 0;
  std::uint64_t welcomes_sent = 0;
  std::uint64_t states_sent = 0;
  std::uint64_t burns_sent = 0;
  std::uint64_t burns_decided = 0;
  std::uint64_t burns_forced = 0;
  std::uint64_t errors_sent = 0;
  std::uint64_t error_bad_message = 0;
  std::uint64_t error_unsupported_version = 0;
  std::uint64_t error_unknown_type = 0;
  std::uint64_t error_invalid_field = 0;
  std::uint64_t error_too_large = 0;
  std::uint64_t error_not_registered = 0;
  std::uint64_t error_internal = 0;
  std::uint64_t replies_dropped = 0;  // peer gone or its queue full: never blocks the loop
  std::uint64_t telemetry_published = 0;
  std::uint64_t telemetry_dropped = 0;
  std::uint64_t sessions_opened = 0;
  std::uint64_t sessions_expired = 0;
  std::uint64_t sessions_closed = 0;
  std::uint64_t runs_opened = 0;
  std::uint64_t runs_rejected = 0;
  std::uint64_t control_requests = 0;
  std::uint64_t control_errors = 0;
  std::uint64_t config_reloads = 0;
  std::uint64_t config_reload_failures = 0;
  std::uint64_t journal_records = 0;
  std::uint64_t journal_errors = 0;
  std::uint64_t http_requests = 0;
  std::uint64_t http_rejected = 0;  // malformed, too large, too slow, or too many at once
  std::uint64_t foreign_rejected = 0;     // messages for a session from a connection that does not hold it
  std::uint64_t sessions_taken_over = 0;  // hellos that moved a session off a closed connection
  std::uint64_t runs_retired = 0;         // idle runs unloaded (their journal stays)
  std::uint64_t journal_records_lost = 0; // appends that failed (a full or failing disk)
  std::uint64_t journal_gaps = 0;         // gap records written once appends worked again

  template <class Visitor>
  void for_each(Visitor&& v) const {
#define ORBIT_STAT(name) v(#name, name)
    ORBIT_STAT(messages_received); ORBIT_STAT(hellos); ORBIT_STAT(snapshots); ORBIT_STAT(acks);
    ORBIT_STAT(heartbeats); ORBIT_STAT(byes); ORBIT_STAT(welcomes_sent); ORBIT_STAT(states_sent);
    ORBIT_STAT(burns_sent); ORBIT_STAT(burns_decided); ORBIT_STAT(burns_forced); ORBIT_STAT(errors_sent);
    ORBIT_STAT(error_bad_message); ORBIT_STAT(error_unsupported_version); ORBIT_STAT(error_unknown_type);
    ORBIT_STAT(error_invalid_field); ORBIT_STAT(error_too_large); ORBIT_STAT(error_not_registered);
    ORBIT_STAT(error_internal); ORBIT_STAT(replies_dropped); ORBIT_STAT(telemetry_published);
    ORBIT_STAT(telemetry_dropped); ORBIT_STAT(sessions_opened); ORBIT_STAT(sessions_expired);
    ORBIT_STAT(sessions_closed); ORBIT_STAT(runs_opened); ORBIT_STAT(runs_rejected);
    ORBIT_STAT(control_requests); ORBIT_STAT(control_errors); ORBIT_STAT(config_reloads);
    ORBIT_STAT(config_reload_failures); ORBIT_STAT(journal_records); ORBIT_STAT(journal_errors);
    ORBIT_STAT(http_requests); ORBIT_STAT(http_rejected);
    ORBIT_STAT(foreign_rejected); ORBIT_STAT(sessions_taken_over); ORBIT_STAT(runs_retired);
    ORBIT_STAT(journal_records_lost); ORBIT_STAT(journal_gaps);
#undef ORBIT_STAT
  }
};

}  // namespace orbit
