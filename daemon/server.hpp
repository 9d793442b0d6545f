// SPDX-License-Identifier: Apache-2.0
#pragma once
// orbitd's core: the sockets, the sessions and one Navigator per run, driven by a
// single-threaded Asio loop. Everything that reads a clock or touches a socket
// lives here; every decision is the Navigator's (controllers/, pure).

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <zmq.hpp>

#include "controllers/navigator.hpp"
#include "config/config.hpp"
#include "daemon/clock.hpp"
#include "dashboard/dashboard_feed.hpp"
#include "dashboard/http_endpoint.hpp"
#include "journal/journal.hpp"
#include "journal/lock_file.hpp"
#include "protocol/journal_record.hpp"
#include "daemon/sessions.hpp"
#include "daemon/stats.hpp"
#include "daemon/zap_handler.hpp"
#include "daemon/zmq_watcher.hpp"
#include "protocol/messages.hpp"

namespace orbit {

class Server {
 public:
  struct Endpoints {
    std::string adapters;
    std::string telemetry;
    std::string control;
    std::string http;  // "http://HOST:PORT", or "" when [daemon] http is off
  };

  // Per-run view kept beside the Navigator, for status and telemetry.
  struct Run {
    std::unique_ptr<Navigator> navigator;
    RunInfo info;
    bool mode_pinned = false;  // set_mode named this run: reloads keep its mode
    std::int64_t last_step = -1;
    Decision last;
    // Each health metric's last value: spectra come on probe steps only, and /metrics
    // keeps showing them on the scrapes between.
    std::map<std::string, double> held_metrics;
    std::string last_reason;
    double opened_at = 0.0;
    double last_active = 0.0;  // daemon time of the run's last message; idle runs retire
    // The CURVE public key of the adapter that opened the run (or first said hello
    // after a restart): hellos of other keys are refused. "" without CURVE.
    std::string client_key;
  };

  // `clock` must outlive the Server; every time the Server reads comes from it.
  Server(boost::asio::io_context& io, DaemonConfig config, const Clock& clock);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Recovers every run found in the journal (cutting torn tails, rebuilding each
  // Navigator by replaying its records), then binds every socket and starts
  // watching. Throws std::runtime_error with a sentence naming the endpoint or
  // journal directory when that fails.
  void start();
  // Stops watching, flushes the journal, closes the sockets. Idempotent.
  void shutdown();

  // Applies a new configuration without losing controller state. Endpoints
  // cannot move while running; a changed one is reported and ignored.
  void reload(DaemonConfig config);
  // Set by main: how to load the config again (the file plus command-line overrides).
  void set_config_loader(std::function<DaemonConfig()> loader) { loader_ = std::move(loader); }
  // SIGHUP and the control `reload`: a valid config is applied, an invalid one is
  // logged with its reason and the running one kept. Returns "" or the problem.
  std::string reload_from_source();

  // Control operations (the control endpoint calls these; so can tests).
  bool set_mode(const std::optional<std::string>& run, Mode mode);
  // The burn as encoded once: journaled, sent to every rank and quoted in the reply.
  std::optional<std::string> force_burn(const Burn& requested);

  // Expires silent sessions (their ranks go STALE) and syncs the journal, by the
  // injected clock; a timer calls it every 250 ms, and a test that advanced its
  // clock may call it on the loop's thread at once. Re-arms the timer.
  void on_housekeeping();

  const Endpoints& endpoints() const { return bound_; }
  const DaemonStats& stats() const { return stats_; }
  const DashboardFeed* dashboard() const { return dashboard_.get(); }
  const DaemonConfig& config() const { return config_; }
  const std::map<std::string, Run>& runs() const { return runs_; }
  const SessionTable& sessions() const { return sessions_; }
  bool journal_ok() const { return journal_ok_; }
  double started_at() const { return started_at_; }
  double now() const { return clock_.now(); }

 private:
  // The messages of one wake of the adapter socket are handled in batches: their
  // replies are queued (and their journal records staged) until 32 replies wait
  // (kReplyBatch) or the wake ends; then the records are committed (one write per run
  // file) and only then are the replies sent, back to back.
  bool drain_adapters();
  bool drain_adapter_messages();
  void end_batch();
  bool drain_control();
  bool drain_subscriptions();
  bool has_watchers(const std::string& run) const;
  void handle_adapter_frames(std::vector<zmq::message_t>& frames);
  void on_hello(const std::vector<std::string>& envelope, Hello hello, std::string_view wire,
                const std::string& client_key);
  void on_snapshot(const std::vector<std::string>& envelope, const Snapshot& snapshot, std::string_view wire);
  void on_ack(const std::vector<std::string>& envelope, const Ack& ack, std::string_view wire);
  void on_heartbeat(const std::vector<std::string>& envelope, const Heartbeat& heartbeat);
  void on_bye(const std::vector<std::string>& envelope, const Bye& bye);
  // The session of (run, rank) if `envelope` holds it; else answers not_registered
  // (no session, or a session bound to another connection) and returns nullptr.
  Session* session_of(const std::vector<std::string>& envelope, const std::string& run, std::int64_t rank,
                      const char* what);
  void reject_foreign(const std::vector<std::string>& envelope, const std::string& run, std::int64_t rank,
                      const char* what);
  // Whether the connection holding `session` is still open (probed with a heartbeat).
  bool still_connected(const Session& session);
  // A run retired for idleness comes back from its journal on its next hello;
  // runs_.end() when there is no journal of it.
  std::map<std::string, Run>::iterator resume_retired_run(const std::string& name, double now);
  // Rebuilds one run from its journal; nullopt when it cannot be (logged). A run
  // that will be live (`resuming`, or recently active) takes the running config and mode.
  std::optional<Run> recover_run_from_journal(const std::string& name, double now, bool resuming);
  void retire_idle_runs(double now);
  void send_error(const std::vector<std::string>& envelope, ErrorCode code, std::string message,
                  std::optional<std::string> ref = std::nullopt);
  // Sends now, or during a batch queues the reply until the batch ends (its journal
  // records committed); `sent` (a counter) counts it once it went out.
  void send(const std::vector<std::string>& envelope, const std::string& payload,
            std::uint64_t DaemonStats::*sent = nullptr);
  bool send_now(const std::vector<std::string>& envelope, const std::string& payload);
  void deliver_burn(Run& run, const std::string& wire, std::optional<std::int64_t> already_sent_to_rank);
  void publish(const Run& run, const Snapshot& snapshot, const Decision& decision);
  void recover_journal();
  // CURVE on every tcp endpoint when [security] names a key pair: reads the keys,
  // starts the ZAP handler. Throws std::runtime_error naming the file or endpoint.
  void start_curve(const std::string& adapters, const std::string& telemetry, const std::string& control);
  // The ZAP handler, created and started (bound) at its first use, before any socket it serves binds.
  ZapHandler& zap_handler();
  // The allow-list of each ZAP domain, read from the files `security` names.
  std::map<std::string, std::vector<std::string>> read_allow_lists(const SecuritySettings& security) const;
  void on_zap_decision(const std::string& domain, bool accepted, const std::string& key, const std::string& address);
  // Appends one record for `run` (no-op without a journal). A failing disk costs
  // a counter and a log line, never the daemon or the trainer's reply.
  // During a batch the record is staged and written by commit_journal(); outside a
  // batch it is committed at once. A run whose journal is failing (a gap pending) is
  // appended record by record, its gap record first, as before batching.
  void journal(const std::string& run, RecordType type, std::string_view bytes);
  void journal_one(const std::string& run, RecordType type, std::int64_t ns, std::string_view bytes);
  void commit_journal();
  void maybe_sync_journal();  // under `interval`: hands due syncs to the journal's worker
  // One record the journal could not take: counted, added to the run's gap, logged.
  void journal_lost(const std::string& run, std::int64_t ns, const std::string& reason);
  void journal_config(const std::string& run, const Run& r);
  Mode mode_for_new_runs() const;
  std::string handle_control(std::string_view request);
  std::string status_reply();  // the control `status` reply, also served as JSON by HTTP
  // GET /metrics (Prometheus text), GET /status (JSON); daemon/http_routes.cpp.
  HttpEndpoint::Response handle_http(std::string_view method, std::string_view target);
  std::string prometheus_metrics();

  boost::asio::io_context& io_;
  DaemonConfig config_;
  const Clock& clock_;
  zmq::context_t context_;
  zmq::socket_t router_;
  zmq::socket_t publisher_;
  zmq::socket_t control_;
  std::optional<Journal> journal_;
  std::vector<LockFile> endpoint_locks_;  // one per ipc socket file, held while bound
  // Records a failing journal could not take, per run, until it writes a gap record.
  struct JournalGap {
    std::uint64_t records = 0;
    std::int64_t first_ns = 0;
    std::int64_t last_ns = 0;
    std::string reason;
  };
  std::map<std::string, JournalGap> journal_gaps_;
  bool journal_ok_ = true;  // the last append succeeded
  double journal_error_logged_at_ = 0.0;
  std::unique_ptr<ZmqReadWatcher> router_watch_;
  std::unique_ptr<ZmqReadWatcher> control_watch_;
  std::unique_ptr<ZmqReadWatcher> publisher_watch_;
  std::unique_ptr<HttpEndpoint> http_;
  std::unique_ptr<DashboardFeed> dashboard_;  // with http_: the page's history and live streams
  std::unique_ptr<ZapHandler> zap_;           // with CURVE or an ipc control socket; closed after the sockets it serves
  std::set<std::string> curve_domains_;       // the endpoints (adapters, telemetry, control) under CURVE
  std::set<std::string> subscriptions_;       // topics (run-id prefixes) watchers asked for
  boost::asio::steady_timer housekeeping_;
  Endpoints bound_;
  SessionTable sessions_;
  std::map<std::string, Run> runs_;
  DaemonStats stats_;
  // Replies held during a batch (drain_adapters); entries keep their buffers.
  struct QueuedReply {
    std::vector<std::string> envelope;
    std::string payload;
    std::uint64_t DaemonStats::*sent = nullptr;
  };
  std::vector<QueuedReply> queued_;
  std::size_t queued_count_ = 0;
  bool batching_ = false;
  Snapshot scratch_snapshot_;           // every snapshot decodes into this (decode_snapshot_into)
  std::vector<zmq::message_t> frames_;  // the adapter message being handled (drain_adapter_messages)
  std::vector<std::string> envelope_;   // its routing frames (handle_adapter_frames)
  std::function<DaemonConfig()> loader_;
  double started_at_ = 0.0;
  static constexpr double kTrimIntervalS = 5.0;  // malloc_trim at most this often (housekeeping)
  double last_trim_ = 0.0;
  bool running_ = false;
};

}  // namespace orbit
