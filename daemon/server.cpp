// SPDX-License-Identifier: Apache-2.0
#include "daemon/server.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.hpp>
#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include "protocol/curve_keys.hpp"
#include "config/endpoints.hpp"
#include "journal/journal_replay.hpp"
#include "daemon/logging.hpp"
#include "protocol/codec.hpp"
#include "protocol/control.hpp"

namespace orbit {
namespace {

constexpr int kDrainBatch = 256;  // messages per wake before yielding to timers and other sockets
// Replies queued before the journal is committed and they are sent. Smaller than a
// client's window keeps the client sending while orbitd works: bench_e2e_latency
// --journal (window 64) gave 1.33-1.50x the unbatched daemon's pipelined rate at 32,
// 1.26-1.45x at 16, 0.84-1.14x at 64 and 0.93-1.15x at 256 (one commit per wake).
// Without a journal the same batches gave 1.14-1.91x the daemon that sent each reply
// at once (bench/results/e2e_latency_batch.json).
constexpr std::size_t kReplyBatch = 32;

std::string_view as_view(const zmq::message_t& m) { return {static_cast<const char*>(m.data()), m.size()}; }

std::string bind_socket(zmq::socket_t& socket, const std::string& endpoint, const char* what,
                        std::vector<LockFile>& locks) {
  const auto dir = ipc_directory(endpoint);
  if (!dir.empty()) {
    try {
      ensure_private_dir(dir);
      // An ipc bind silently takes the socket file over from a running daemon:
      // the lock beside it refuses the second one instead.
      locks.push_back(LockFile::acquire(endpoint.substr(6) + ".lock",
                                        std::string("the ") + what + " endpoint " + endpoint));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cannot bind the ") + what + " endpoint " + endpoint + ": " + e.what());
    }
  }
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    std::string hint = e.num() == EADDRINUSE ? " (another orbitd is probably running there)" : "";
    throw std::runtime_error(std::string("cannot bind the ") + what + " endpoint " + endpoint + ": " + e.what() + hint);
  }
  return socket.get(zmq::sockopt::last_endpoint);
}

// The bearer token HTTP requests must carry: one line, private like a key.
std::string read_http_token(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw std::runtime_error("HTTP token file " + file + ": cannot open file");
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw std::runtime_error("HTTP token file " + file + ": group or others may read it; chmod 600 it");
  std::ifstream in(file);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  if (token.size() < 16 || token.find_first_of(" \t") != std::string::npos)
    throw std::runtime_error("HTTP token file " + file + ": the first line must be a token of 16 or more characters "
                             "without spaces (e.g. `head -c 32 /dev/urandom | base64 > FILE`)");
  return token;
}

bool tcp_endpoint(const std::string& endpoint) { return endpoint.rfind("tcp://", 0) == 0; }

void count_error(DaemonStats& s, ErrorCode code) {
  ++s.errors_sent;
  switch (code) {
    case ErrorCode::bad_message: ++s.error_bad_message; break;
    case ErrorCode::unsupported_version: ++s.error_unsupported_version; break;
    case ErrorCode::unknown_type: ++s.error_unknown_type; break;
    case ErrorCode::invalid_field: ++s.error_invalid_field; break;
    case ErrorCode::too_large: ++s.error_too_large; break;
    case ErrorCode::not_registered: ++s.error_not_registered; break;
    case ErrorCode::internal: ++s.error_internal; break;
  }
}

}  // namespace

Server::Server(boost::asio::io_context& io, DaemonConfig config, const Clock& clock)
    : io_(io),
      config_(std::move(config)),
      clock_(clock),
      context_(1),
      router_(context_, zmq::socket_type::router),
      // XPUB: we see subscriptions, so telemetry is only encoded when someone watches.
      publisher_(context_, zmq::socket_type::xpub),
      control_(context_, zmq::socket_type::router),
      housekeeping_(io) {}

Server::~Server() { shutdown(); }

void Server::start() {
  // "auto" telemetry and control sockets live beside an ipc adapter socket (SPEC
  // section 9), so two daemons in two directories never share them.
  const std::string adapters = resolve_endpoint(config_.endpoint, default_endpoints().adapters);
  const auto defaults = endpoints_beside(adapters);
  const std::string control = resolve_endpoint(config_.control, defaults.control);
  const std::string telemetry = resolve_endpoint(config_.telemetry, defaults.telemetry);
  // Whoever reaches the control socket can steer every run; on tcp, CURVE with an
  // allow-list of operator keys decides who that is.
  const bool control_authenticated = config_.security.curve() && tcp_endpoint(control);
  if (!config_.allow_exposed_control && !control_authenticated && !private_ipc_endpoint(control)) {
    throw std::runtime_error("the control endpoint " + control +
                             " is not an ipc socket in a private directory, so other users or hosts could set "
                             "modes and force burns; use ipc:///DIR/control.sock, tcp with CURVE ([security] "
                             "curve_secret_key_file and control_keys_file), or allow it explicitly with "
                             "--allow-exposed-control ([daemon] allow_exposed_control = true)");
  }
  if (!config_.http.empty() && !config_.allow_exposed_http && !loopback_host(parse_http_address(config_.http).first)) {
    throw std::runtime_error("the HTTP address " + config_.http +
                             " is not loopback and HTTP has no authentication (/status shows the config path and "
                             "sessions); bind 127.0.0.1, or allow it explicitly with --allow-exposed-http "
                             "([daemon] allow_exposed_http = true)");
  }
  // Before the journal and before any bind: a refused start writes nothing, and no
  // CURVE socket ever listens without its ZAP handler.
  if (config_.security.curve()) start_curve(adapters, telemetry, control);
  // An ipc control socket serves its owner only: beside the private directory (an
  // abstract socket has none), ZAP checks each peer's user id (SO_PEERCRED):
  // orbitd's own or root's.
  const bool control_ipc = control.rfind("ipc://", 0) == 0;
  if (control_ipc) {
    zap_handler().allow_uids("control", {::geteuid(), 0});
    control_.set(zmq::sockopt::zap_domain, "control");
  }
  if (!config_.journal.dir.empty()) recover_journal();
  for (zmq::socket_t* s : {&router_, &publisher_, &control_}) {
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::sndhwm, config_.send_hwm);
    s->set(zmq::sockopt::rcvhwm, config_.send_hwm);
  }
  // Unroutable replies fail loudly (counted) instead of vanishing; with
  // dontwait a full peer queue is a counted drop, never a stall.
  router_.set(zmq::sockopt::router_mandatory, true);
  control_.set(zmq::sockopt::router_mandatory, true);
  // Twice the decode limit: larger frames still get a too_large reply, and
  // only absurd ones are cut by ZeroMQ before they reach memory.
  router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.limits.max_message_bytes) * 2 + 4096);
  control_.set(zmq::sockopt::maxmsgsize, int64_t{1} << 20);

  bound_.adapters = bind_socket(router_, adapters, "adapter", endpoint_locks_);
  bound_.telemetry =
      bind_socket(publisher_, telemetry, "telemetry", endpoint_locks_);
  bound_.control = bind_socket(control_, control, "control", endpoint_locks_);
  if (control_ipc && control.size() > 6 && control[6] != '@' &&
      ::chmod(control.substr(6).c_str(), S_IRUSR | S_IWUSR) != 0) {
    throw std::runtime_error("cannot make the control socket " + control.substr(6) +
                             " private (chmod 600): " + std::strerror(errno));
  }
  if (!config_.http.empty()) {
    http_ = std::make_unique<HttpEndpoint>(
        io_, [this](std::string_view method, std::string_view target) -> HttpEndpoint::Response {
          try {
            return handle_http(method, target);
          } catch (const std::exception& e) {
            spdlog::error("internal error serving HTTP {}: {}", target.substr(0, 256), e.what());
            return {500, "text/plain; charset=utf-8", "internal error\n"};
          }
        });
    if (!config_.security.http_token_file.empty()) http_->require_bearer_token(read_http_token(config_.security.http_token_file));
    http_->listen(config_.http);
    bound_.http = http_->url();
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    DashboardFeed::Options options;
    options.web_root = find_web_root(ec ? std::string() : exe.parent_path().string(), ORBIT_WEB_DEV_DIR);
    options.points_per_run = static_cast<std::size_t>(config_.dashboard.history_steps);
    options.max_runs = static_cast<std::size_t>(config_.dashboard.max_runs);
    dashboard_ = std::make_unique<DashboardFeed>(options);
    dashboard_->set_zones(config_.navigator);
    if (options.web_root.empty()) spdlog::warn("dashboard page files not found (npm ci in web/, or ORBIT_WEB_ROOT)");
  }

  for (const auto& [what, endpoint] : {std::pair{"adapter", bound_.adapters}, std::pair{"telemetry", bound_.telemetry},
                                       std::pair{"control", bound_.control}}) {
    if (tcp_endpoint(endpoint) && !config_.security.curve())
      spdlog::warn("the {} endpoint {} is tcp without CURVE: anyone who reaches it is served; name orbitd's key "
                   "pair and allow-lists in [security] (orbit keygen)",
                   what, endpoint);
  }

  started_at_ = clock_.now();
  running_ = true;
  router_watch_ = std::make_unique<ZmqReadWatcher>(io_, router_, [this] { return drain_adapters(); });
  control_watch_ = std::make_unique<ZmqReadWatcher>(io_, control_, [this] { return drain_control(); });
  publisher_watch_ = std::make_unique<ZmqReadWatcher>(io_, publisher_, [this] { return drain_subscriptions(); });
  router_watch_->start();
  control_watch_->start();
  publisher_watch_->start();
  on_housekeeping();
  spdlog::info("orbitd listening: adapters {} telemetry {} control {}{}{} (mode {})", bound_.adapters,
               bound_.telemetry, bound_.control, bound_.http.empty() ? "" : " http ", bound_.http, config_.mode);
}

void Server::shutdown() {
  if (!running_) return;
  running_ = false;
  housekeeping_.cancel();
  router_watch_.reset();
  control_watch_.reset();
  publisher_watch_.reset();
  if (http_) http_->close();
  router_.close();
  publisher_.close();
  control_.close();
  if (zap_) zap_->stop();
  endpoint_locks_.clear();
  if (journal_) {
    try {
      journal_->flush();
    } catch (const std::exception& e) {
      spdlog::error("journal flush at shutdown failed: {}", e.what());
    }
    journal_.reset();
  }
  std::string counters;
  stats_.for_each([&](const char* name, std::uint64_t v) {
    if (v) counters += fmt::format("{}{}={}", counters.empty() ? "" : " ", name, v);
  });
  spdlog::info("orbitd stopped: {}", counters.empty() ? "no traffic" : counters);
}

void Server::start_curve(const std::string& adapters, const std::string& telemetry, const std::string& control) {
  const CurveKeyPair keys = read_secret_key_file(config_.security.curve_secret_key_file);
  const auto lists = read_allow_lists(config_.security);
  for (const auto& [domain, keys_of_domain] : lists) zap_handler().allow(domain, keys_of_domain);
  const std::pair<const char*, const std::string*> endpoints[] = {
      {"adapters", &adapters}, {"telemetry", &telemetry}, {"control", &control}};
  for (const auto& [domain, endpoint] : endpoints) {
    if (!tcp_endpoint(*endpoint)) continue;  // ipc: the private directory decides who connects
    if (!lists.count(domain)) {
      throw std::runtime_error(std::string("the ") + domain + " endpoint " + *endpoint +
                               " is tcp under CURVE but no allow-list names who may connect; set [security] " +
                               (std::string(domain) == "control" ? "control_keys_file" : "adapter_keys_file"));
    }
    zmq::socket_t& socket = std::string(domain) == "adapters" ? router_ : std::string(domain) == "telemetry" ? publisher_ : control_;
    make_curve_server(socket, keys.secret_key, domain);
    curve_domains_.insert(domain);
  }
  spdlog::info("CURVE on {} tcp endpoint(s); server public key {}", curve_domains_.size(), keys.public_key);
}

ZapHandler& Server::zap_handler() {
  if (!zap_) {
    zap_ = std::make_unique<ZapHandler>(
        io_, context_,
        [this](const std::string& domain, bool accepted, const std::string& key, const std::string& address) {
          on_zap_decision(domain, accepted, key, address);
        });
    zap_->start();
  }
  return *zap_;
}

std::map<std::string, std::vector<std::string>> Server::read_allow_lists(const SecuritySettings& security) const {
  std::map<std::string, std::vector<std::string>> lists;
  std::vector<std::string> adapter_keys, control_keys;
  if (!security.adapter_keys_file.empty()) adapter_keys = read_allowed_keys_file(security.adapter_keys_file);
  if (!security.control_keys_file.empty()) control_keys = read_allowed_keys_file(security.control_keys_file);
  if (!adapter_keys.empty()) lists["adapters"] = adapter_keys;
  if (!control_keys.empty()) lists["control"] = control_keys;
  // Watchers are adapters' operators or operators: either list may read telemetry.
  std::vector<std::string> watchers = adapter_keys;
  watchers.insert(watchers.end(), control_keys.begin(), control_keys.end());
  if (!watchers.empty()) lists["telemetry"] = watchers;
  return lists;
}

void Server::on_zap_decision(const std::string& domain, bool accepted, const std::string& key,
                             const std::string& address) {
  std::uint64_t* counter = nullptr;
  if (domain == "adapters") counter = accepted ? &stats_.auth_accepted_adapters : &stats_.auth_refused_adapters;
  else if (domain == "telemetry") counter = accepted ? &stats_.auth_accepted_telemetry : &stats_.auth_refused_telemetry;
  else if (domain == "control") counter = accepted ? &stats_.auth_accepted_control : &stats_.auth_refused_control;
  if (counter) ++*counter;
  if (accepted) {
    spdlog::debug("auth: {} client {} from {} let in", domain, key, address);
    return;
  }
  // A refused client reconnects every second or so: the first of each and a summary now and then.
  const std::uint64_t refused = stats_.auth_refused_adapters + stats_.auth_refused_telemetry + stats_.auth_refused_control;
  if (refused == 1 || refused % 1000 == 0) {
    spdlog::warn("auth: refused a {} client from {} with credentials {} (not on the allow-list; {} refused so far)",
                 domain, address, key.empty() ? "<none>" : key, refused);
  }
}

void Server::reload(DaemonConfig config) {
  // Allow-lists are re-read (a key is revoked by a reload); orbitd's own key pair stays.
  if (zap_) {
    const auto lists = read_allow_lists(config.security);  // throws: the running config is kept
    for (const char* domain : {"adapters", "telemetry", "control"}) {
      auto it = lists.find(domain);
      if (curve_domains_.count(domain) && it == lists.end())
        throw std::runtime_error(std::string("[security] leaves the ") + domain + " endpoint without an allow-list");
      zap_->allow(domain, it == lists.end() ? std::vector<std::string>{} : it->second);
    }
  }
  if (config.security.curve_secret_key_file != config_.security.curve_secret_key_file) {
    spdlog::warn("config reload: orbitd's CURVE key pair cannot change while running; keeping {}",
                 config_.security.curve_secret_key_file.empty() ? "none" : config_.security.curve_secret_key_file);
    config.security.curve_secret_key_file = config_.security.curve_secret_key_file;
  }
  if (config.endpoint != config_.endpoint || config.telemetry != config_.telemetry || config.control != config_.control ||
      config.http != config_.http) {
    spdlog::warn("config reload: endpoints cannot change while running; keeping {} / {} / {} / http '{}'",
                 bound_.adapters, bound_.telemetry, bound_.control, bound_.http);
  }
  config.endpoint = config_.endpoint;
  config.telemetry = config_.telemetry;
  config.control = config_.control;
  config.http = config_.http;
  config_ = std::move(config);
  if (dashboard_) {
    dashboard_->set_zones(config_.navigator);
    dashboard_->set_limits(static_cast<std::size_t>(config_.dashboard.history_steps),
                           static_cast<std::size_t>(config_.dashboard.max_runs));
  }
  const Mode mode = mode_for_new_runs();
  for (auto& [name, run] : runs_) {
    // Same order as the journal records: config, then mode.
    if (!run.mode_pinned) {
      journal(name, RecordType::config, config_.text);
      journal(name, RecordType::mode, config_.mode);
      run.navigator->reconfigure(config_.navigator);
      run.navigator->set_mode(mode);
    } else {
      journal(name, RecordType::config, config_.text);
      run.navigator->reconfigure(config_.navigator);
    }
  }
  ++stats_.config_reloads;
  spdlog::info("config reloaded from {}: mode {}, {} runs reconfigured", config_.source, config_.mode, runs_.size());
}

std::string Server::reload_from_source() {
  if (!loader_) return "orbitd was started without --config; nothing to reload";
  try {
    DaemonConfig next = loader_();
    configure_logging(next.log_level, next.log_format);
    reload(std::move(next));
    return {};
  } catch (const std::exception& e) {
    ++stats_.config_reload_failures;
    spdlog::error("config reload failed, keeping the running config: {}", e.what());
    return std::string("reload failed, running config kept: ") + e.what();
  }
}

Mode Server::mode_for_new_runs() const { return parse_mode(config_.mode).value_or(Mode::active); }

bool Server::set_mode(const std::optional<std::string>& run, Mode mode) {
  if (run) {
    auto it = runs_.find(*run);
    if (it == runs_.end()) return false;
    it->second.navigator->set_mode(mode);
    it->second.mode_pinned = true;
    journal(*run, RecordType::mode, std::string(to_string(mode)));
    spdlog::info("run {}: mode set to {}", *run, to_string(mode));
    return true;
  }
  config_.mode = to_string(mode);
  for (auto& [name, r] : runs_) {
    r.navigator->set_mode(mode);
    r.mode_pinned = false;
    journal(name, RecordType::mode, config_.mode);
  }
  spdlog::info("all runs: mode set to {}", config_.mode);
  return true;
}

std::optional<std::string> Server::force_burn(const Burn& requested) {
  auto it = runs_.find(requested.run);
  if (it == runs_.end()) return std::nullopt;
  journal(requested.run, RecordType::forced_burn, encode(requested));
  auto burn = it->second.navigator->force_burn(requested);
  if (!burn) return std::nullopt;
  std::string wire = encode(*burn);
  journal(requested.run, RecordType::burn, wire);
  ++stats_.burns_forced;
  it->second.last_reason = burn->reason;
  deliver_burn(it->second, wire, std::nullopt);
  spdlog::info("run {}: forced burn #{} lr_scale {:.4g} at step {}: {}", burn->run, burn->seq, burn->lr_scale,
               burn->apply_at_step, burn->reason);
  return wire;
}

// ---------------------------------------------------------------- adapters

bool Server::drain_adapters() {
  // Replies are queued and sent together, journal or not: back-to-back sends wake
  // ZeroMQ's I/O thread (an eventfd write and a context switch) about once per
  // batch instead of once per reply. With a journal they also wait for the commit.
  batching_ = true;
  const bool more = drain_adapter_messages();
  const bool sent = queued_count_ > 0;
  end_batch();
  // Sends may consume the descriptor's edge for messages that arrived meanwhile:
  // after the batch's replies went out, look once more.
  return running_ && (more || (sent && ZmqReadWatcher::readable(router_)));
}

void Server::end_batch() {
  // Every record of the batch is in the kernel (synced under `always`) before the
  // first reply of the batch leaves: a kill -9 never loses an answered record.
  commit_journal();
  batching_ = false;
  if (queued_count_ > 0) ++stats_.reply_batches;
  for (std::size_t i = 0; i < queued_count_; ++i) {
    const QueuedReply& reply = queued_[i];
    if (running_ && send_now(reply.envelope, reply.payload) && reply.sent) ++(stats_.*reply.sent);
  }
  queued_count_ = 0;
}

bool Server::drain_adapter_messages() {
  // No ZMQ_EVENTS check before each message: each one costs a getpid and a poll
  // system call inside ZeroMQ (its mailbox's fork check), a third of orbitd's
  // system time in the pipelined bench. A dontwait receive that finds nothing
  // processes the same pending commands and says EAGAIN, which ends the drain.
  for (int n = 0; n < kDrainBatch; ++n) {
    if (!running_) return false;
    frames_.clear();
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(router_, std::back_inserter(frames_), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("adapter socket receive failed: {}", e.what());
      return false;
    }
    if (!got) return false;
    handle_adapter_frames(frames_);
    if (batching_ && queued_count_ >= kReplyBatch) {
      end_batch();
      batching_ = true;
    }
  }
  return running_ && ZmqReadWatcher::readable(router_);
}

void Server::handle_adapter_frames(std::vector<zmq::message_t>& frames) {
  ++stats_.messages_received;
  if (frames.size() < 2) return;  // ROUTER always prepends the identity; nothing to answer otherwise
  // Kept between messages, like frames_: a warm message allocates no vectors.
  std::vector<std::string>& envelope = envelope_;
  envelope.resize(frames.size() - 1);
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) envelope[i].assign(as_view(frames[i]));
  const std::string_view wire = as_view(frames.back());
  // Under CURVE, the adapter's public key (the ZAP handler's user id): a run belongs to the key that opened it.
  std::string client_key;
  if (curve_domains_.count("adapters")) {
    try {
      client_key = frames.back().gets("User-Id");
    } catch (const zmq::error_t&) {
    }
  }

  // Snapshots, nearly every message, decode into the server's scratch Snapshot: its
  // strings, spectra and map nodes are reused, so a warm decode allocates nothing.
  DecodeResult decoded;
  if (decode_snapshot_into(wire, scratch_snapshot_, decoded, config_.limits)) {
    try {
      on_snapshot(envelope, scratch_snapshot_, wire);
    } catch (const std::exception& e) {
      // A bug must cost one reply, never the daemon.
      spdlog::error("internal error handling snapshot: {}", e.what());
      send_error(envelope, ErrorCode::internal, std::string("internal error: ") + e.what());
    }
    return;
  }
  if (!decoded.ok()) {
    spdlog::debug("rejected {} message: {} ({})", decoded.type.empty() ? "undecodable" : decoded.type,
                  decoded.error.message, to_string(decoded.error.code));
    send_error(envelope, decoded.error.code, decoded.error.message, decoded.error.ref);
    return;
  }
  try {
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, Snapshot>) on_snapshot(envelope, m, wire);
          else if constexpr (std::is_same_v<T, Hello>) on_hello(envelope, std::move(m), wire, client_key);
          else if constexpr (std::is_same_v<T, Ack>) on_ack(envelope, m, wire);
          else if constexpr (std::is_same_v<T, Heartbeat>) on_heartbeat(envelope, m);
          else if constexpr (std::is_same_v<T, Bye>) on_bye(envelope, m);
          else
            send_error(envelope, ErrorCode::unknown_type,
                       "'" + std::string(decoded.type) + "' is sent by the daemon, not to it; adapters send hello, snapshot, ack, heartbeat and bye",
                       std::string("type"));
        },
        *decoded.message);
  } catch (const std::exception& e) {
    // A bug must cost one reply, never the daemon.
    spdlog::error("internal error handling {}: {}", decoded.type, e.what());
    send_error(envelope, ErrorCode::internal, std::string("internal error: ") + e.what());
  }
}

void Server::on_hello(const std::vector<std::string>& envelope, Hello hello, std::string_view wire,
                      const std::string& client_key) {
  ++stats_.hellos;
  // Every check comes before any state changes: a refused hello changes nothing.
  if (std::find(hello.versions.begin(), hello.versions.end(), kProtocolVersion) == hello.versions.end()) {
    std::string offered;
    for (auto v : hello.versions) offered += (offered.empty() ? "" : ", ") + std::to_string(v);
    send_error(envelope, ErrorCode::unsupported_version,
               "adapter offers protocol versions [" + offered + "]; this daemon speaks version 1", std::string("versions"));
    return;
  }
  if (hello.world_size > config_.max_world_size) {
    send_error(envelope, ErrorCode::too_large,
               "world_size " + std::to_string(hello.world_size) + " is over this daemon's limit of " +
                   std::to_string(config_.max_world_size) + " ranks (daemon.max_world_size)",
               std::string("world_size"));
    return;
  }
  auto it = runs_.find(hello.run);
  if (it != runs_.end() && !client_key.empty() && !it->second.client_key.empty() &&
      it->second.client_key != client_key) {
    // Another job's adapter (another key) must not join the run: its snapshots
    // would steer the controller, and its burns reach every rank.
    ++stats_.foreign_key_rejected;
    if (stats_.foreign_key_rejected % 1000 == 1) {
      spdlog::warn("run {} rank {}: hello from client key {}, but the run belongs to another key; refused ({} so far)",
                   hello.run, hello.rank, client_key, stats_.foreign_key_rejected);
    }
    send_error(envelope, ErrorCode::invalid_field,
               "run '" + hello.run +
                   "' belongs to another client key (every rank of a run must use the CURVE key that opened it); "
                   "use that key or another run id",
               std::string("run"));
    return;
  }
  if (it == runs_.end() && static_cast<std::int64_t>(runs_.size()) >= config_.max_runs) {
    ++stats_.runs_rejected;
    send_error(envelope, ErrorCode::too_large,
               "this daemon already controls " + std::to_string(runs_.size()) + " runs (daemon.max_runs)", std::string("run"));
    return;
  }
  Session* existing = sessions_.find(hello.run, hello.rank);
  if (!existing && static_cast<std::int64_t>(sessions_.size()) >= config_.max_sessions) {
    ++stats_.sessions_rejected;
    send_error(envelope, ErrorCode::too_large,
               "this daemon already has " + std::to_string(sessions_.size()) + " sessions (daemon.max_sessions)", std::string("rank"));
    return;
  }
  if (existing && existing->envelope != envelope) {
    // A session belongs to the connection that said hello. Another connection may
    // take it over only once that one is gone (a restarted adapter), never while
    // it is still connected (another peer acting for the run).
    if (still_connected(*existing)) {
      reject_foreign(envelope, hello.run, hello.rank, "hello");
      return;
    }
    ++stats_.sessions_taken_over;
    spdlog::info("run {} rank {}: hello from a new connection; the old one is gone, session taken over", hello.run,
                 hello.rank);
  }

  const double now = clock_.now();
  RunInfo info{hello.run, hello.world_size, hello.domains, hello.actuators, hello.base_lr};
  if (it == runs_.end()) it = resume_retired_run(hello.run, now);
  if (it == runs_.end()) {
    Run run;
    run.info = info;
    run.opened_at = now;
    // The journal opens with the config and mode the Navigator is built with.
    journal_config(hello.run, run);
    journal(hello.run, RecordType::hello, wire);
    run.navigator = std::make_unique<Navigator>(config_.navigator, info, mode_for_new_runs());
    it = runs_.emplace(hello.run, std::move(run)).first;
    ++stats_.runs_opened;
    spdlog::info("run {}: opened (world size {}, adapter {} {}, actuators [{}])", hello.run, hello.world_size,
                 hello.adapter, hello.adapter_version, fmt::join(hello.actuators, ", "));
  } else {
    journal(hello.run, RecordType::hello, wire);
    it->second.info = info;
    it->second.navigator->update_info(info);
  }
  it->second.last_active = now;
  if (it->second.client_key.empty()) it->second.client_key = client_key;
  Session& session = sessions_.open(hello.run, hello.rank, envelope, now);
  ++stats_.sessions_opened;
  // Granted when asked for, and said so: an adapter takes news-only replies only from
  // a welcome that says "news" (an older daemon says nothing and replies to all).
  session.news_only = hello.replies == kRepliesNews;
  Welcome welcome{hello.run, hello.rank, session.id, kProtocolVersion,
                  std::string(to_string(it->second.navigator->mode())), config_.snapshot_every,
                  static_cast<std::int64_t>(config_.limits.max_message_bytes),
                  session.news_only ? std::optional<std::string>(kRepliesNews) : std::nullopt};
  send(envelope, encode(welcome), &DaemonStats::welcomes_sent);
  spdlog::debug("run {} rank {}: session {}", hello.run, hello.rank, session.id);
}

bool Server::still_connected(const Session& session) {
  // ROUTER_MANDATORY: a routing id whose connection closed is unroutable at once.
  // The probe is a heartbeat echo, which adapters already take at any time.
  Heartbeat probe;
  probe.run = session.run;
  probe.rank = session.rank;
  const std::string payload = encode(probe);
  try {
    for (const auto& frame : session.envelope) {
      if (!router_.send(zmq::buffer(frame), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return true;
    }
    router_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
    return true;  // routable (a full queue also means a live peer)
  } catch (const zmq::error_t& e) {
    return e.num() != EHOSTUNREACH;
  }
}

Session* Server::session_of(const std::vector<std::string>& envelope, const std::string& run, std::int64_t rank,
                            const char* what) {
  Session* session = sessions_.find(run, rank);
  if (!session) {
    send_error(envelope, ErrorCode::not_registered,
               "run '" + run + "' rank " + std::to_string(rank) +
                   " has no session; send hello first (the daemon may have restarted)",
               std::string("run"));
    return nullptr;
  }
  if (session->envelope != envelope) {
    reject_foreign(envelope, run, rank, what);
    return nullptr;
  }
  return session;
}

void Server::reject_foreign(const std::vector<std::string>& envelope, const std::string& run, std::int64_t rank,
                            const char* what) {
  ++stats_.foreign_rejected;
  if (stats_.foreign_rejected % 1000 == 1) {
    spdlog::warn("run {} rank {}: {} from a connection that does not hold the session, refused ({} so far)", run, rank,
                 what, stats_.foreign_rejected);
  }
  send_error(envelope, ErrorCode::not_registered,
             "run '" + run + "' rank " + std::to_string(rank) +
                 " has a session on another connection; a new connection takes it over with hello once the old "
                 "one is closed or its session expired",
             std::string("run"));
}

void Server::on_snapshot(const std::vector<std::string>& envelope, const Snapshot& snapshot, std::string_view wire) {
  ++stats_.snapshots;
  Session* session = session_of(envelope, snapshot.run, snapshot.rank, "snapshot");
  if (!session) return;
  auto run_it = runs_.find(snapshot.run);
  if (run_it == runs_.end()) return send_error(envelope, ErrorCode::internal, "session without a run");
  session->last_seen = clock_.now();
  ++session->snapshots;
  Run& run = run_it->second;
  run.last_active = session->last_seen;
  run.last_step = std::max(run.last_step, snapshot.step);

  // Journaled before the Navigator sees it and before any reply: a record the
  // adapter got an answer for is always on disk (in the kernel at least).
  journal(snapshot.run, RecordType::snapshot, wire);
  Decision decision = run.navigator->on_snapshot(snapshot);
  for (const auto& event : decision.events) spdlog::info("run {} step {}: {}", snapshot.run, snapshot.step, event);
  if (!decision.events.empty()) run.last_reason = decision.events.back();

  const bool forecast = decision.metrics.count("steps_to_danger") > 0;
  if (decision.burn) {
    session->told(decision.burn->state, decision.burn->basin, forecast, session->last_seen);
    ++stats_.burns_decided;
    run.last_reason = decision.burn->reason;
    const std::string burn_wire = encode(*decision.burn);
    journal(snapshot.run, RecordType::burn, burn_wire);
    send(envelope, burn_wire, &DaemonStats::burns_sent);
    deliver_burn(run, burn_wire, snapshot.rank);
    spdlog::info("run {}: burn #{} lr_scale {:.4g} at step {}: {}", snapshot.run, decision.burn->seq,
                 decision.burn->lr_scale, decision.burn->apply_at_step, decision.burn->reason);
  } else if (!session->state_is_news(decision.state, decision.basin, forecast, !snapshot.spectra.empty(),
                                     session->last_seen)) {
    // A news-only adapter already knows this state; the reply would only wake its
    // threads and ours and cost its training thread a read (bench/overhead).
    ++session->snapshots_untold;
    ++stats_.states_withheld;
  } else {
    session->told(decision.state, decision.basin, forecast, session->last_seen);
    // Lend the metrics to the reply instead of copying them; they come back for
    // telemetry and status.
    State state{snapshot.run,   snapshot.rank,  snapshot.step, decision.state, decision.basin,
                std::move(decision.metrics), decision.basin_age_steps};
    send(envelope, encode(state), &DaemonStats::states_sent);
    decision.metrics = std::move(state.metrics);
  }
  publish(run, snapshot, decision);
  // Held only for /metrics: without an HTTP endpoint nobody reads them, so the
  // per-snapshot path skips the copy.
  if (http_)
    for (const auto& [name, value] : decision.metrics) run.held_metrics[name] = value;
  if (dashboard_ && decision.step_closed) dashboard_->record(snapshot, decision);
  // The previous decision's metrics map goes back to the Navigator, whose next
  // decision refills its nodes instead of allocating them.
  run.navigator->recycle_metrics(std::move(run.last.metrics));
  run.last = std::move(decision);
}

void Server::on_ack(const std::vector<std::string>& envelope, const Ack& ack, std::string_view wire) {
  ++stats_.acks;
  Session* session = session_of(envelope, ack.run, ack.rank, "ack");
  if (!session) return;
  auto run_it = runs_.find(ack.run);
  if (run_it == runs_.end()) return send_error(envelope, ErrorCode::internal, "session without a run");
  session->last_seen = clock_.now();
  run_it->second.last_active = session->last_seen;
  journal(ack.run, RecordType::ack, wire);
  run_it->second.navigator->on_ack(ack);
}

void Server::on_heartbeat(const std::vector<std::string>& envelope, const Heartbeat& heartbeat) {
  ++stats_.heartbeats;
  if (heartbeat.run && heartbeat.rank) {
    Session* session = session_of(envelope, *heartbeat.run, *heartbeat.rank, "heartbeat");
    if (!session) return;
    session->last_seen = clock_.now();
    if (auto it = runs_.find(*heartbeat.run); it != runs_.end()) it->second.last_active = session->last_seen;
  }
  send(envelope, encode(heartbeat));
}

void Server::on_bye(const std::vector<std::string>& envelope, const Bye& bye) {
  ++stats_.byes;
  const Session* session = sessions_.find(bye.run, bye.rank);
  if (!session) return;
  if (session->envelope != envelope) {
    // A bye gets no answer; a foreign one is only counted and logged.
    ++stats_.foreign_rejected;
    spdlog::warn("run {} rank {}: bye from a connection that does not hold the session, ignored", bye.run, bye.rank);
    return;
  }
  if (sessions_.close(bye.run, bye.rank)) {
    journal(bye.run, RecordType::bye, encode(bye));
    ++stats_.sessions_closed;
    spdlog::info("run {} rank {}: said bye", bye.run, bye.rank);
  }
}

void Server::send_error(const std::vector<std::string>& envelope, ErrorCode code, std::string message,
                        std::optional<std::string> ref) {
  count_error(stats_, code);
  send(envelope, encode(Error{code, std::move(message), std::move(ref)}));
}

void Server::send(const std::vector<std::string>& envelope, const std::string& payload,
                  std::uint64_t DaemonStats::*sent) {
  if (batching_) {
    if (queued_count_ == queued_.size()) queued_.emplace_back();
    QueuedReply& reply = queued_[queued_count_++];
    reply.envelope.assign(envelope.begin(), envelope.end());
    reply.payload.assign(payload);
    reply.sent = sent;
    return;
  }
  ++stats_.reply_batches;
  if (send_now(envelope, payload) && sent) ++(stats_.*sent);
  // Outside a drain (a forced burn from the control socket): nothing else looks at
  // the adapter socket after this send, which may have consumed its edge.
  if (router_watch_) router_watch_->recheck();
}

bool Server::send_now(const std::vector<std::string>& envelope, const std::string& payload) {
  try {
    for (const auto& frame : envelope) {
      if (!router_.send(zmq::buffer(frame), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        ++stats_.replies_dropped;
        return false;
      }
    }
    if (!router_.send(zmq::buffer(payload), zmq::send_flags::dontwait)) {
      ++stats_.replies_dropped;
      return false;
    }
    return true;
  } catch (const zmq::error_t&) {
    ++stats_.replies_dropped;  // EHOSTUNREACH: the adapter is gone
    return false;
  }
}

void Server::deliver_burn(Run& run, const std::string& wire, std::optional<std::int64_t> already_sent_to_rank) {
  for (Session* s : sessions_.of_run(run.info.run)) {
    if (already_sent_to_rank && s->rank == *already_sent_to_rank) continue;
    send(s->envelope, wire, &DaemonStats::burns_sent);
  }
}

bool Server::drain_subscriptions() {
  for (int n = 0; n < kDrainBatch; ++n) {
    if (!running_ || !ZmqReadWatcher::readable(publisher_)) return false;
    zmq::message_t m;
    if (!publisher_.recv(m, zmq::recv_flags::dontwait)) return false;
    const auto bytes = as_view(m);
    if (bytes.empty()) continue;
    // XPUB passes the first subscribe and the last unsubscribe of each topic.
    if (bytes[0] == 1) subscriptions_.emplace(bytes.substr(1));
    else if (bytes[0] == 0) subscriptions_.erase(std::string(bytes.substr(1)));
  }
  return running_ && ZmqReadWatcher::readable(publisher_);
}

bool Server::has_watchers(const std::string& run) const {
  for (const auto& topic : subscriptions_) {
    if (run.compare(0, topic.size(), topic) == 0) return true;
  }
  return false;
}

void Server::publish(const Run& run, const Snapshot& snapshot, const Decision& decision) {
  if (!has_watchers(snapshot.run)) return;
  Telemetry t;
  t.run = snapshot.run;
  t.rank = snapshot.rank;
  t.step = snapshot.step;
  t.time = snapshot.time;
  t.mode = to_string(run.navigator->mode());
  t.state = decision.state;
  t.basin = decision.basin;
  t.forecast_basin = decision.forecast_basin;
  t.basin_age_steps = decision.basin_age_steps;
  t.lr_scale = decision.lr_scale;
  t.metrics = decision.metrics;
  if (decision.burn) t.burn_seq = decision.burn->seq;
  t.reason = run.last_reason;
  const std::string body = encode(t);
  try {
    // PUB never blocks: at its high-water mark ZeroMQ drops for slow watchers.
    publisher_.send(zmq::buffer(snapshot.run), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (publisher_.send(zmq::buffer(body), zmq::send_flags::dontwait)) {
      ++stats_.telemetry_published;
    } else {
      ++stats_.telemetry_dropped;
    }
  } catch (const zmq::error_t&) {
    ++stats_.telemetry_dropped;
  }
}

void Server::on_housekeeping() {
  if (!running_) return;
  const double now = clock_.now();
  for (Session& gone : sessions_.expire(now, config_.session_timeout_s)) {
    ++stats_.sessions_expired;
    spdlog::warn("run {} rank {}: no message for {:.1f} s, session expired", gone.run, gone.rank, now - gone.last_seen);
    if (auto it = runs_.find(gone.run); it != runs_.end()) {
      journal(gone.run, RecordType::rank_silent, encode_rank_silent(RankSilent{gone.rank, now}));
      it->second.navigator->on_rank_silent(gone.rank, now);
    }
  }
  retire_idle_runs(now);
  // A backlog (orbitd short of CPU while ZeroMQ kept reading) leaves the freed
  // messages in malloc's arenas, which free() no longer trims (M_TRIM_THRESHOLD,
  // main.cpp); hand the free pages back here so RSS falls again.
  if (now - last_trim_ >= kTrimIntervalS) {
    last_trim_ = now;
    ::malloc_trim(0);
  }
  maybe_sync_journal();
  housekeeping_.expires_after(std::chrono::milliseconds(250));
  housekeeping_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_housekeeping();
  });
}

// ---------------------------------------------------------------- journal

void Server::journal(const std::string& run, RecordType type, std::string_view bytes) {
  if (!journal_) return;
  const auto ns = static_cast<std::int64_t>(std::llround(clock_.now() * 1e9));
  if (journal_gaps_.count(run)) {
    // Failing (or just recovered): record by record, the gap record first.
    commit_journal();
    journal_one(run, type, ns, bytes);
    return;
  }
  try {
    journal_->stage(run, type, ns, bytes);
  } catch (const std::exception& e) {
    journal_lost(run, ns, e.what());
  }
  if (!batching_) commit_journal();
}

void Server::journal_one(const std::string& run, RecordType type, std::int64_t ns, std::string_view bytes) {
  const auto writes = journal_->stats().writes;
  try {
    if (auto gap = journal_gaps_.find(run); gap != journal_gaps_.end()) {
      // The disk is back: the records lost are recorded first, so replay shows the gap.
      const JournalGap& g = gap->second;
      journal_->append(run, RecordType::gap, ns,
                       std::to_string(g.records) + " records lost between daemon times " + std::to_string(g.first_ns) +
                           " and " + std::to_string(g.last_ns) + " ns: " + g.reason);
      ++stats_.journal_gaps;
      spdlog::warn("journal of run {} writes again; a gap record marks the {} records lost", run, g.records);
      journal_gaps_.erase(gap);
    }
    journal_->append(run, type, ns, bytes);
    ++stats_.journal_records;
    if (!journal_ok_) spdlog::warn("journal appends work again");
    journal_ok_ = true;
  } catch (const std::exception& e) {
    journal_lost(run, ns, e.what());
  }
  stats_.journal_writes += journal_->stats().writes - writes;
  maybe_sync_journal();
}

void Server::commit_journal() {
  if (!journal_ || journal_->staged() == 0) return;
  const std::size_t staged = journal_->staged();
  const auto writes = journal_->stats().writes;
  const std::vector<Journal::CommitFailure> failures = journal_->commit();
  stats_.journal_writes += journal_->stats().writes - writes;
  std::size_t lost = 0;
  for (const auto& failure : failures) lost += failure.lost.size();
  stats_.journal_records += staged - lost;
  if (lost < staged) {
    if (!journal_ok_) spdlog::warn("journal appends work again");
    journal_ok_ = true;
  }
  for (const auto& failure : failures)
    for (const auto& record : failure.lost) journal_lost(failure.run, record.timestamp_ns, failure.error);
  maybe_sync_journal();
}

// Interval syncs run on the journal's worker; one that failed is counted here.
void Server::maybe_sync_journal() {
  if (!journal_) return;
  try {
    journal_->maybe_sync(clock_.steady_now());
  } catch (const std::exception& e) {
    ++stats_.journal_errors;
    spdlog::error("journal sync failed: {}", e.what());
  }
}

void Server::journal_lost(const std::string& run, std::int64_t ns, const std::string& reason) {
  ++stats_.journal_errors;
  ++stats_.journal_records_lost;
  JournalGap& g = journal_gaps_[run];
  if (g.records++ == 0) g.first_ns = ns;
  g.last_ns = ns;
  g.reason = reason;
  // Loud at the first failure, then a summary at most every 10 s while it lasts.
  const double now = clock_.now();
  if (journal_ok_ || now - journal_error_logged_at_ >= 10.0) {
    spdlog::error("JOURNAL FAILING: {} records lost so far; replies continue but these records are not on disk; "
                  "last error (run {}): {}",
                  stats_.journal_records_lost, run, reason);
    journal_error_logged_at_ = now;
  }
  journal_ok_ = false;
}

void Server::journal_config(const std::string& run, const Run& r) {
  journal(run, RecordType::config, config_.text);
  journal(run, RecordType::mode, std::string(to_string(r.navigator ? r.navigator->mode() : mode_for_new_runs())));
}

void Server::recover_journal() {
  JournalOptions options;
  options.root = config_.journal.dir;
  options.segment_bytes = config_.journal.segment_bytes;
  options.fsync = config_.journal.fsync == FsyncPolicy::always   ? JournalOptions::always
                  : config_.journal.fsync == FsyncPolicy::never ? JournalOptions::never
                                                                : JournalOptions::interval;
  options.fsync_interval_ms = config_.journal.fsync_interval_ms;
  options.max_open_files = config_.journal.max_open_files;
  try {
    journal_.emplace(Journal::open(options));
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot open the journal at " + config_.journal.dir + ": " + e.what());
  }
  const double now = clock_.now();
  for (const std::string& name : journal_->runs()) {
    std::optional<Run> run = recover_run_from_journal(name, now, false);
    if (!run) continue;
    if (now - run->last_active > config_.run_idle_timeout_s) {
      // Retired before the restart: it comes back from its journal on its next hello.
      journal_->close_run(name);
      spdlog::info("run {}: idle for {:.0f} s, left retired until its next hello", name, now - run->last_active);
      continue;
    }
    spdlog::info("run {}: resumed at step {} after {} burns", name, run->last_step, run->navigator->last_seq());
    runs_.emplace(name, std::move(*run));
    ++stats_.runs_opened;
  }
}

std::optional<Server::Run> Server::recover_run_from_journal(const std::string& name, double now, bool resuming) {
  RunDriver::Options driver;
  driver.config = config_.navigator;
  driver.mode = mode_for_new_runs();
  RecoveredRun recovered;
  try {
    recovered = recover_run(journal_->run_dir(name), std::move(driver));
  } catch (const std::exception& e) {
    spdlog::error("run {}: journal cannot be recovered, run skipped: {}", name, e.what());
    return std::nullopt;
  }
  const auto& report = recovered.recording.report;
  if (report.clean()) {
    spdlog::info("run {}: recovered {}", name, report.summary());
  } else {
    spdlog::warn("run {}: recovered with damage: {}", name, report.summary());
  }
  if (!recovered.navigator) return std::nullopt;
  Run run;
  run.navigator = std::move(recovered.navigator);
  run.info = run.navigator->info();
  run.opened_at = now;
  run.last_active = now;
  if (!recovered.recording.entries.empty()) {
    run.last_active = static_cast<double>(recovered.recording.entries.back().timestamp_ns) * 1e-9;
  }
  run.last_step = recovered.last_step;
  run.last.lr_scale = run.navigator->last_burn() ? run.navigator->last_burn()->lr_scale : 1.0;
  // A run that stays retired gets nothing journaled; one that comes back does.
  if (!resuming && now - run.last_active > config_.run_idle_timeout_s) return run;
  // A restarted daemon runs its own config and mode from here on; the journal says so.
  if (recovered.config_text.value_or("") != config_.text || recovered.mode != mode_for_new_runs()) {
    journal(name, RecordType::config, config_.text);
    journal(name, RecordType::mode, config_.mode);
    run.navigator->reconfigure(config_.navigator);
    run.navigator->set_mode(mode_for_new_runs());
  }
  return run;
}

std::map<std::string, Server::Run>::iterator Server::resume_retired_run(const std::string& name, double now) {
  if (!journal_ || !valid_journal_run(name)) return runs_.end();
  std::error_code ec;
  if (!std::filesystem::is_directory(journal_->run_dir(name), ec)) return runs_.end();
  std::optional<Run> run = recover_run_from_journal(name, now, true);
  if (!run) return runs_.end();
  run->last_active = now;
  spdlog::info("run {}: back from retirement at step {} after {} burns", name, run->last_step,
               run->navigator->last_seq());
  ++stats_.runs_opened;
  return runs_.emplace(name, std::move(*run)).first;
}

void Server::retire_idle_runs(double now) {
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (now - it->second.last_active <= config_.run_idle_timeout_s || !sessions_.of_run(it->first).empty()) {
      ++it;
      continue;
    }
    spdlog::info("run {}: no session and idle for {:.0f} s, retired (its journal stays; a hello brings it back)",
                 it->first, now - it->second.last_active);
    if (journal_) {
      try {
        journal_->close_run(it->first);
      } catch (const std::exception& e) {
        spdlog::error("run {}: closing its journal failed: {}", it->first, e.what());
      }
    }
    ++stats_.runs_retired;
    it = runs_.erase(it);
  }
}

// ---------------------------------------------------------------- control

bool Server::drain_control() {
  for (int n = 0; n < kDrainBatch; ++n) {
    if (!running_ || !ZmqReadWatcher::readable(control_)) return false;
    std::vector<zmq::message_t> frames;
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(control_, std::back_inserter(frames), zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("control socket receive failed: {}", e.what());
      return false;
    }
    if (!got || frames.size() < 2) continue;
    ++stats_.control_requests;
    std::string reply;
    try {
      reply = handle_control(as_view(frames.back()));
    } catch (const std::exception& e) {
      // A bug must cost one reply, never the daemon.
      ++stats_.control_errors;
      spdlog::error("internal error handling a control request: {}", e.what());
      reply = encode_control_error(std::string("internal error: ") + e.what());
    }
    try {
      for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
        control_.send(frames[i], zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      }
      control_.send(zmq::buffer(reply), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
      ++stats_.control_errors;
    }
  }
  return running_ && ZmqReadWatcher::readable(control_);
}

}  // namespace orbit
