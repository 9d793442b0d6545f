# SPDX-License-Identifier: Apache-2.0
"""OrbitClient: one rank's connection to ``orbitd`` (protocol/SPEC.md).

The client never makes the trainer wait. Every send is non-blocking into a bounded
ZeroMQ queue; when the queue is full (daemon dead, slow or restarting) the message
is dropped and counted. There is no background thread: heartbeats and the hello
that re-registers after a daemon restart are sent from inside ``send_snapshot`` and
``poll`` when they are due.

    with OrbitClient("ipc:///run/orbit/orbitd.sock", run="gpt2-small") as orbit:
        for step, batch in enumerate(loader):
            loss = train_step(batch)
            orbit.send_snapshot(step, loss, spectra={"attn.0": eigenvalues})
            for reply in orbit.poll():
                if reply["type"] == "burn":
                    ...

``poll()`` returns decoded messages as dicts (``protocol.decode``): ``welcome``,
``state``, ``burn``, ``heartbeat`` and ``error``, in arrival order.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Iterable, Mapping

import zmq

from . import curve_keys, protocol
from .snapshot_template import SnapshotTemplate
from .state_template import StateTemplate

__version__ = "0.1.0"

_log = logging.getLogger("orbit_adapter")

# The per-step calls use plain ints (pyzmq's enum members cost more to combine).
_EVENTS, _POLLIN, _NOBLOCK, _RCVMORE = (int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK),
                                         int(zmq.RCVMORE))

# pyzmq's own send, without the Python wrapper that pyzmq's Socket puts around it for
# SERVER / RADIO sockets (routing_id, group): a DEALER passes neither.
_RAW_SEND = zmq.backend.Socket.send


@dataclasses.dataclass
class ClientStats:
    """Counters of one client; ``OrbitClient.stats`` returns a copy."""

    sent: int = 0              # messages handed to ZeroMQ (hello, snapshot, ack, heartbeat, bye)
    snapshots: int = 0         # snapshots among them
    dropped: int = 0           # messages dropped because the send queue was full
    replies: int = 0           # messages received and decoded
    states: int = 0
    burns: int = 0
    errors: int = 0            # `error` messages received (every code)
    welcomes: int = 0
    heartbeats_sent: int = 0
    reconnect_hellos: int = 0  # hellos re-sent after `not_registered`
    decode_errors: int = 0     # received bytes that were not a valid message (ignored)
    oversized: int = 0         # messages refused locally: over the daemon's max_message_bytes
    close_confirmed: int = 0   # 1 once the daemon echoed the ping sent after `bye` (close)


class OrbitClient:
    """A DEALER connection to orbitd for one (run, rank).

    endpoint: where orbitd's adapter ROUTER listens ("ipc://...", "tcp://host:port").
    run, rank, world_size: the identity this client registers with `hello`.
    domains: data domains the trainer samples from; actuators: what it can apply
      (subset of protocol.ACTUATORS); base_lr: the trainer's own learning rate.
    queue_limit: messages ZeroMQ may hold for the daemon before sends drop (SNDHWM).
    heartbeat_interval: seconds of silence after which a heartbeat is due.
    rehello_interval: how long a hello waits for its welcome before another
      `not_registered` may trigger the next one (a restart answers every queued
      snapshot with `not_registered`; one hello is enough).
    close_linger: the most seconds ``close`` waits for the daemon to confirm that it
      has everything sent before `bye` (only when a daemon ever welcomed this client:
      without one ``close`` never waits), and then the seconds ZeroMQ keeps trying
      to deliver what is left (in its I/O thread).
    replies: "every" (one reply per snapshot) or "news": the hello asks orbitd to
      answer a snapshot only when the answer is news (a burn, an error, a changed
      state, basin or forecast, new spectral metrics, or a refresh at least every 10
      snapshots and 5 s); taken only when the welcome says so (`news_only`), which an
      older daemon does not (protocol/SPEC.md 3). Either way every burn and state
      change arrives; with news fewer `state` replies (stats.states) do.
    curve_server_key, curve_key: for a tcp endpoint under CURVE, orbitd's public key
      (Z85, or its NAME.pub) and this client's key pair (NAME.key, or a (public,
      secret) pair) on orbitd's adapter allow-list; None takes $ORBIT_CURVE_SERVER_KEY
      and $ORBIT_CURVE_KEY. A client orbitd does not know gets no answer at all.
    """

    def __init__(self, endpoint: str, run: str, rank: int = 0, world_size: int = 1,
                 domains: Iterable[str] = (), actuators: Iterable[str] = ("lr",),
                 adapter: str = "orbit-python", adapter_version: str = __version__,
                 base_lr: float | None = None, queue_limit: int = 1000,
                 heartbeat_interval: float = 5.0, rehello_interval: float = 0.5,
                 close_linger: float = 0.2, context: zmq.Context | None = None,
                 limits: protocol.DecodeLimits = protocol.DecodeLimits(),
                 clock: Callable[[], float] = time.monotonic, replies: str = "every",
                 curve_server_key: str | None = None, curve_key: Any = None):
        if not protocol.valid_run_id(run):
            raise ValueError(f"run id {run!r} must be 1-128 characters of [A-Za-z0-9._-]")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
        actuators = tuple(actuators)
        unknown = [a for a in actuators if a not in protocol.ACTUATORS]
        if unknown:
            raise ValueError(f"unknown actuators {unknown}; known: {', '.join(protocol.ACTUATORS)}")
        if queue_limit < 1:
            raise ValueError("queue_limit must be >= 1")
        if replies not in protocol.REPLIES:
            raise ValueError(f"replies must be one of {', '.join(protocol.REPLIES)}, got {replies!r}")
        curve = curve_keys.client_keys(curve_server_key, curve_key)
        self.endpoint = endpoint
        self.run = run
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._hello = protocol.encode({
            "type": "hello", "run": run, "rank": self.rank, "world_size": self.world_size,
            "adapter": adapter, "adapter_version": adapter_version, "versions": [protocol.VERSION],
            "domains": list(domains), "actuators": list(actuators), "base_lr": base_lr,
            "replies": None if replies == "every" else replies})
        self._replies = replies
        self._heartbeat = protocol.encode({"type": "heartbeat", "run": run, "rank": self.rank})
        self._bye = protocol.encode({"type": "bye", "run": run, "rank": self.rank})
        # Ordinary snapshots' bytes without the encoder (Orbit's per-step path).
        self.template = SnapshotTemplate(run, self.rank)
        self._state_template = StateTemplate()  # the reply to every snapshot, read at once
        self._heartbeat_interval = heartbeat_interval
        self._rehello_interval = rehello_interval
        self._close_linger_ms = int(close_linger * 1000)
        self._limits = limits
        self._clock = clock
        self._stats = ClientStats()

        # What the daemon said in its latest welcome.
        self.session: str | None = None
        self.mode: str | None = None
        self.snapshot_every: int = 1
        self.version: int | None = None
        self.registered = False
        # The daemon's message limit (welcome.max_message_bytes); the protocol's
        # default until a welcome says otherwise.
        self.max_message_bytes: int = protocol.DecodeLimits().max_message_bytes
        self.last_error: str | None = None  # why the latest refused send was refused
        # True while the welcome granted news-only replies: most snapshots get none.
        self.news_only = False

        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, queue_limit)
        self._socket.setsockopt(zmq.RCVHWM, max(queue_limit, 1000))
        # Queue while no daemon is connected, so the first hello waits for it; the
        # HWM bounds what waits.
        self._socket.setsockopt(zmq.IMMEDIATE, 0)
        self._socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self._socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        # True when the connection is CURVE-authenticated (keys given or in the environment).
        self.curve = curve is not None
        if curve is not None:
            server_public, public, secret = curve
            self._socket.curve_serverkey = server_public.encode("ascii")
            self._socket.curve_publickey = public.encode("ascii")
            self._socket.curve_secretkey = secret.encode("ascii")
        self._socket.connect(endpoint)
        self._closed = False
        self._last_send = float("-inf")
        self._last_hello = float("-inf")
        self._last_heartbeat_try = float("-inf")
        self._last_welcome = float("-inf")
        # A snapshot went out since the last poll (its `state` reply may be waiting),
        # and whether the last such guess found a reply (see poll).
        self._reply_due = False
        self._recv_first = True
        self._send_hello(self._clock())

    # ---------------------------------------------------------------- sending

    def send_snapshot(self, step: int, loss: float, grad_norm: float | None = None,
                      lr: float | None = None, tokens: int | None = None,
                      domains: Mapping[str, Mapping[str, float]] | None = None,
                      spectra: Mapping[str, Any] | None = None, loop_rate: float | None = None,
                      scalars: Mapping[str, float] | None = None,
                      time: float | None = None, schedule_lr: float | None = None) -> bool:
        """Queue one snapshot without blocking; False when it was dropped (queue full)
        or refused (over the daemon's ``max_message_bytes``: see ``last_error``).

        spectra: name -> numpy array, list, or anything numpy.asarray takes (a CPU
        tensor included); sent as little-endian float32 `bin`. domains: name ->
        {"loss": ..., "weight": ...}. time: Unix seconds (now when None). Non-finite
        loss or grad_norm is fine: it is the loudest signal a run can send. lr: the lr in
        effect; schedule_lr: the trainer's own schedule's lr before a burn's scale (the
        daemon's absolute lr ceiling reads it).
        """
        message = {"type": "snapshot", "run": self.run, "rank": self.rank, "step": step,
                   "time": _now() if time is None else time, "loss": loss,
                   "grad_norm": grad_norm, "lr": lr, "schedule_lr": schedule_lr, "tokens": tokens,
                   "domains": domains,
                   "spectra": spectra, "loop_rate": loop_rate, "scalars": scalars}
        return self.send_snapshot_bytes(protocol.encode_snapshot(message))

    def send_snapshot_bytes(self, data: bytes) -> bool:
        """``send_snapshot`` of a snapshot already encoded (by ``template``)."""
        sent = self._send(data)
        if sent:
            self._stats.snapshots += 1
            self._reply_due = True
            if self._heartbeat_interval > 0:
                return True  # sent just now: no heartbeat can be due (_housekeeping)
        self._housekeeping()
        return sent

    def send_ack(self, seq: int, step: int, late: bool = False, lr: float | None = None,
                 restored_step: int | None = None) -> bool:
        """Tell the daemon what a burn actually did; False when dropped."""
        sent = self._send(protocol.encode({
            "type": "ack", "run": self.run, "rank": self.rank, "seq": seq, "step": step,
            "late": late, "lr": lr, "restored_step": restored_step}))
        self._housekeeping()
        return sent

    def _send(self, data: bytes) -> bool:
        if self._closed:
            raise RuntimeError("OrbitClient is closed")
        if len(data) > self.max_message_bytes:
            # Far over the limit ZeroMQ drops the connection and nobody is told;
            # refused here the trainer gets False, a counter and a reason.
            self._stats.oversized += 1
            self.last_error = (f"message of {len(data)} bytes not sent: over the daemon's limit of "
                               f"{self.max_message_bytes} bytes (orbitd [limits] max_message_bytes)")
            if self._stats.oversized == 1 or self._stats.oversized % 1000 == 0:
                _log.warning("orbit: %s (%d refused so far)", self.last_error, self._stats.oversized)
            return False
        try:
            _RAW_SEND(self._socket, data, _NOBLOCK)
        except zmq.Again:
            self._stats.dropped += 1
            return False
        self._stats.sent += 1
        self._last_send = self._clock()
        return True

    def _send_hello(self, now: float) -> bool:
        self._last_hello = now
        return self._send(self._hello)

    def _housekeeping(self) -> None:
        now = self._clock()
        # Due after a quiet interval; tried at most once per interval, so a dead
        # daemon costs one dropped heartbeat per interval, not one per call.
        if now - max(self._last_send, self._last_heartbeat_try) >= self._heartbeat_interval:
            self._last_heartbeat_try = now
            if self._send(self._heartbeat):
                self._stats.heartbeats_sent += 1

    # ---------------------------------------------------------------- receiving

    def poll(self, max_messages: int = 1000, budget: float = 0.0005) -> list[dict]:
        """The messages that have arrived, decoded, without blocking.

        Handles `welcome` (session, mode, snapshot_every) and `error not_registered`
        (says hello again) before returning them. Stops after max_messages or once
        `budget` seconds have passed since the first message was read (at least one
        is read), so that a
        burst (a restarted daemon answers every queued snapshot) is spread over
        several calls instead of stalling one step; the rest waits in ZeroMQ.
        """
        if self._closed:
            return []
        replies = []
        sock = self._socket
        # Right after a snapshot its reply is most likely waiting: read it at once and
        # ask ZMQ_EVENTS only after it (an empty non-blocking read raises, and the
        # exception costs more than the question, so this guess is dropped after a miss
        # until a reply comes back). Either way everything that has arrived is read.
        recv_first = self._reply_due and self._recv_first and not self.news_only
        self._reply_due = False
        deadline = None
        for n in range(max_messages):
            if n:
                if deadline is None:
                    deadline = time.perf_counter() + budget
                elif time.perf_counter() >= deadline:
                    break
            if not (n == 0 and recv_first) and not sock.getsockopt(_EVENTS) & _POLLIN:
                break
            try:
                frames = [sock.recv(_NOBLOCK)]
                while sock.getsockopt(_RCVMORE):  # recv_multipart, without its enum flags
                    frames.append(sock.recv(_NOBLOCK))
            except zmq.Again:
                if n == 0 and recv_first:
                    self._recv_first = False
                break
            data = frames[-1]
            message = self._state_template.decode(data)
            if message is None:
                try:
                    message = protocol.decode(data, self._limits)
                except protocol.ProtocolError:
                    self._stats.decode_errors += 1
                    continue
                if message["type"] == "state":
                    self._state_template.learn(data, message)
            self._stats.replies += 1
            if message["type"] == "state":  # the reply to every snapshot: only counted
                self._stats.states += 1
                self._recv_first = True
            else:
                self._on_message(message)
            replies.append(message)
        self._housekeeping()
        return replies

    def _on_message(self, message: dict) -> None:
        kind = message["type"]
        if kind == "state":
            self._stats.states += 1
        elif kind == "burn":
            self._stats.burns += 1
        elif kind == "welcome":
            self._stats.welcomes += 1
            if message["run"] == self.run and message["rank"] == self.rank:
                self.session = message["session"]
                self.mode = message["mode"]
                self.snapshot_every = message["snapshot_every"]
                self.version = message["version"]
                if message.get("max_message_bytes") is not None:
                    self.max_message_bytes = message["max_message_bytes"]
                self.news_only = self._replies == "news" and message.get("replies") == "news"
                self.registered = True
                self._last_welcome = self._clock()
        elif kind == "error":
            self._stats.errors += 1
            if message["code"] == "not_registered":
                # orbitd restarted or expired our session: register again. A restart
                # answers every queued snapshot with not_registered; while a hello
                # sent since the last welcome is young, it answers them all.
                self.registered = False
                now = self._clock()
                hello_pending = self._last_hello > self._last_welcome
                if not hello_pending or now - self._last_hello >= self._rehello_interval:
                    if self._send_hello(now):
                        self._stats.reconnect_hellos += 1

    # ---------------------------------------------------------------- lifecycle

    @property
    def socket(self) -> "zmq.Socket":
        """The DEALER socket, for a poller on the one thread that uses this client
        (ClientThread)."""
        return self._socket

    @property
    def stats(self) -> ClientStats:
        return dataclasses.replace(self._stats)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Say bye and close the socket.

        ZeroMQ counts a message as sent once the kernel has it. Closing a connection
        that still holds unread replies resets it (TCP RST), and the reset loses what
        the kernels had not delivered yet: the tail of a burst, the bye. So after
        `bye` a plain ping follows, and close reads (and drops) replies until its echo
        comes back. The daemon answers a connection in order and closes the session at
        `bye`, so after the echo nothing is in flight either way. Close waits for it at
        most ``close_linger`` seconds, and only when a daemon ever welcomed this client.
        """
        if self._closed:
            return
        try:
            if self._send(self._bye) and self._last_welcome > float("-inf") and self._close_linger_ms > 0:
                self._await_ping_echo(self._close_linger_ms / 1000.0)
        finally:
            self._closed = True
            self._socket.close(linger=self._close_linger_ms)

    def _await_ping_echo(self, timeout: float) -> None:
        if not self._send(_PING):
            return
        sock = self._socket
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(max(1, int(left * 1000)), zmq.POLLIN):
                return
            try:
                frames = sock.recv_multipart(_NOBLOCK)
                message = protocol.decode(frames[-1], self._limits)
            except zmq.Again:
                continue
            except protocol.ProtocolError:
                self._stats.decode_errors += 1
                continue
            self._stats.replies += 1
            if message["type"] == "heartbeat" and message.get("run") is None:
                self._stats.close_confirmed = 1
                return
            # Only counted: nobody reads replies after close, and a `not_registered`
            # here must not say hello again (that would open a session after `bye`).
            kind = message["type"]
            if kind == "state":
                self._stats.states += 1
            elif kind == "burn":
                self._stats.burns += 1
            elif kind == "error":
                self._stats.errors += 1

    def __enter__(self) -> "OrbitClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # A client dropped without close() must not leak its socket.
        if not getattr(self, "_closed", True):
            try:
                self._socket.close(linger=0)
            except Exception:
                pass


# A heartbeat without run and rank: a plain ping, echoed by the daemon, no session.
_PING = protocol.encode({"type": "heartbeat"})


def _now() -> float:
    return time.time()
