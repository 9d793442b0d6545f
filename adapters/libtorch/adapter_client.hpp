// SPDX-License-Identifier: Apache-2.0
#pragma once
// The adapter's side of the wire: one DEALER socket to orbitd, the hello/welcome
// session, heartbeats, and non-blocking sends. Torch-free on purpose, so it compiles
// fast and can be reused by any C++ trainer.
//
// Nothing here ever blocks the caller (except wait_registered, which is explicit, and
// close, which waits at most close_wait for a daemon that welcomed it):
// sends use ZMQ_DONTWAIT on a socket with a bounded queue (ZMQ_SNDHWM) and
// ZMQ_IMMEDIATE, so a message that cannot be queued — daemon absent, dead or
// too slow to drain — is dropped and counted instead of waited for.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.hpp"

namespace orbit {

struct AdapterClientOptions {
  std::string endpoint{};  // e.g. "tcp://127.0.0.1:7070" or "ipc:///run/orbit/orbitd.sock"
  std::string run{};
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  std::vector<std::string> domains{};
  std::vector<std::string> actuators = {"lr", "rollback"};
  std::optional<double> base_lr{};
  std::string adapter = "orbit-libtorch";
  std::string adapter_version = "0.1.0";
  int send_queue = 64;  // messages the socket may hold for the daemon before sends drop
  std::chrono::milliseconds hello_retry{500};
  std::chrono::milliseconds heartbeat_every{1000};
  // With snapshots unanswered for this long the session counts as lost: the
  // client stops sending snapshots and says hello again until the daemon answers.
  std::chrono::milliseconds reply_timeout{3000};
  // How long close() waits for the daemon to confirm it has everything sent before
  // `bye` (only with a session; 0: never wait, and what is in flight may be lost).
  std::chrono::milliseconds close_wait{200};
  // CURVE, for a tcp endpoint under orbitd's [security]: orbitd's public key (Z85,
  // or its NAME.pub from `orbit keygen`) and this client's NAME.key, on orbitd's
  // adapter allow-list. Empty ones take $ORBIT_CURVE_SERVER_KEY and $ORBIT_CURVE_KEY;
  // with neither anywhere the connection is plain. The constructor throws
  // std::runtime_error for half a pair or a bad key file. A client orbitd does not
  // know gets no answer at all (it never registers).
  std::string curve_server_key{};
  std::string curve_key_file{};
};

struct AdapterClientCounters {
  std::uint64_t snapshots_sent = 0;
  std::uint64_t acks_sent = 0;
  std::uint64_t dropped = 0;  // snapshots and acks that could not be queued
  std::uint64_t hellos_sent = 0;
  std::uint64_t heartbeats_sent = 0;
  std::uint64_t welcomes = 0;
  std::uint64_t states = 0;
  std::uint64_t burns = 0;
  std::uint64_t errors = 0;
  std::uint64_t not_registered = 0;
  std::uint64_t undecodable = 0;  // replies that failed protocol validation
  std::uint64_t sessions_lost = 0;  // reply timeout or repeated failed sends
  std::uint64_t oversized = 0;  // snapshots and acks refused locally: over the daemon's max_message_bytes
  std::uint64_t close_confirmed = 0;  // 1 once the daemon echoed the ping sent after `bye`
};

class AdapterClient {
 public:
  explicit AdapterClient(AdapterClientOptions options);  // throws for bad CURVE keys (above)
  ~AdapterClient();  // close()
  AdapterClient(const AdapterClient&) = delete;
  AdapterClient& operator=(const AdapterClient&) = delete;

  // Reads every reply already waiting, then sends hello or a heartbeat when due.
  // Costs a few microseconds when there is nothing to do.
  void poll();

  // Blocks up to `timeout` for a welcome; for start-up code that wants to begin
  // training under control. Returns registered().
  bool wait_registered(std::chrono::milliseconds timeout);

  // Queues a snapshot or ack without waiting; false when it was dropped, or refused
  // for being larger than the daemon's limit (welcome.max_message_bytes, else the
  // protocol default): far over it ZeroMQ would drop the connection unannounced.
  bool send_snapshot(const Snapshot& snapshot);
  bool send_ack(const Ack& ack);

  // Says bye (with a session), then sends a plain ping and reads (and drops) replies
  // until its echo comes back, at most options().close_wait. ZeroMQ counts a message
  // as sent once the kernel has it; closing a connection that holds unread replies
  // resets it and loses what the kernels had not delivered yet (the tail of the
  // snapshots, the bye). The daemon answers in order and closes the session at bye,
  // so after the echo nothing is in flight. Idempotent; sends fail afterwards.
  void close();
  bool closed() const { return closed_; }

  // Burns received since the last call, in arrival order.
  std::vector<Burn> take_burns();

  bool registered() const { return registered_; }
  const std::optional<Welcome>& welcome() const { return welcome_; }
  const std::optional<State>& last_state() const { return last_state_; }
  const std::optional<Error>& last_error() const { return last_error_; }
  // Why the latest oversized message was refused ("" when none was).
  const std::string& last_refusal() const { return last_refusal_; }
  // The largest message the daemon takes.
  std::size_t max_message_bytes() const;
  const AdapterClientCounters& counters() const { return counters_; }
  const AdapterClientOptions& options() const { return options_; }
  // Whether the connection is CURVE-authenticated.
  bool curve() const { return curve_; }
  // Snapshots sent in this session that have no reply yet.
  std::size_t unanswered() const { return unanswered_.size(); }

  // Updates the base lr announced by the next hello.
  void set_base_lr(std::optional<double> lr) { options_.base_lr = lr; }

 private:
  using Clock = std::chrono::steady_clock;

  bool send_bytes(const std::string& bytes);
  bool fits(const std::string& bytes);  // counts and explains a message over the limit
  void send_hello(Clock::time_point now);
  void handle(const char* data, std::size_t size, Clock::time_point now);
  void drop_session();

  AdapterClientOptions options_;
  struct Socket;  // keeps zmq.hpp out of this header
  std::unique_ptr<Socket> socket_;

  bool registered_ = false;
  bool hello_queued_ = false;
  Clock::time_point last_hello_{};
  Clock::time_point last_send_{};
  Clock::time_point waiting_since_{};  // last message heard, or the send that started the wait
  std::deque<std::int64_t> unanswered_;  // steps of snapshots sent and not yet answered
  static constexpr std::size_t kMaxTrackedSnapshots = 4096;
  int failed_sends_ = 0;
  static constexpr int kFailedSendsBeforeHello = 3;
  std::optional<Welcome> welcome_;
  std::optional<State> last_state_;
  std::optional<Error> last_error_;
  std::string last_refusal_;
  std::vector<Burn> burns_;
  AdapterClientCounters counters_;
  bool curve_ = false;
  bool closed_ = false;
};

}  // namespace orbit
