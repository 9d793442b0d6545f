# SPDX-License-Identifier: Apache-2.0
"""ClientThread: an OrbitClient driven from a background thread, so that encoding,
sending, receiving and decoding stay off the training thread.

The training thread only queues work (`send_snapshot`, `send_ack`: a deque append and
a one-byte wake-up) and takes the replies the thread has already decoded (`poll`).
The thread owns the ZeroMQ socket from then on (a socket must not be shared between
threads); it sends in queue order and waits on the socket and the wake-up pipe, so a
reply is read as soon as it arrives.

Values in a snapshot may be tensors, also on a GPU (the gradient norm, spectra,
scalars): the thread brings them to the host, after a CUDA event recorded when the
snapshot was queued, so the training thread never waits for the device. Nothing is
lost on the way: `close` sends everything queued, then `bye`, before it returns (it
waits for encoding work only, never for the daemon: sends do not block). `flush`
waits until the queue is empty, for readers of `stats`.

What the training thread sees of the daemon's welcome (`registered`,
`snapshot_every`, `session`, `mode`, `max_message_bytes`) changes when `poll` hands
the welcome over, as it does with a plain OrbitClient.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import os
import select
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np
import torch

try:
    import zmq
except ImportError:  # a client given by the caller (custom transport) needs no ZeroMQ
    zmq = None

__all__ = ["ClientThread", "host_value", "host_array"]

_WELCOME_FIELDS = ("registered", "snapshot_every", "session", "mode", "version",
                   "max_message_bytes")
# The thread's housekeeping (heartbeat) granularity while idle: heartbeats are due after
# 5 s of silence. Each idle wake-up costs a poll and a read (~0.1-0.3 ms of CPU on a
# loaded 2-core machine), so not more often than needed.
_IDLE_WAKE_S = 1.0
_CLOSE_WAIT_S = 10.0


def host_value(x: Any) -> Any:
    """A float for a tensor (any device); anything else as it is."""
    if isinstance(x, torch.Tensor):
        return float(x)  # a one-element tensor of any dtype; waits for a GPU one here
    return x


def host_array(x: Any) -> Any:
    """A float32 numpy array for a tensor (any device, any dtype); anything else as it is."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return x


def _needs_device_event(fields: Dict[str, Any]) -> bool:
    def on_gpu(x):
        return isinstance(x, torch.Tensor) and x.is_cuda
    if on_gpu(fields.get("grad_norm")):
        return True
    for name in ("spectra", "scalars"):
        m = fields.get(name)
        if m and any(on_gpu(v) for v in m.values()):
            return True
    return False


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"\0")
    except OSError:  # full (the thread is woken anyway) or closed (it has ended)
        pass


@dataclasses.dataclass
class ThreadStats:
    queued: int = 0          # messages handed to the thread
    queue_max: int = 0       # the longest the queue has been
    prepare_errors: int = 0  # snapshots whose deferred work (probe finish) raised


class ClientThread:
    """Runs `client` (an OrbitClient, or any object with its methods) on a thread.

    client: created on the calling thread and handed over: nobody else may use it.
    socket: the ZeroMQ socket to wait on (default: `client.socket` when it has one;
      without one the thread polls the client after each send and when woken).
    """

    def __init__(self, client: Any, socket: Any = None) -> None:
        self._client = client
        self._socket = socket if socket is not None else getattr(client, "socket", None)
        self._outbox: Deque[Tuple[str, tuple, dict]] = collections.deque()
        self._inbox: Deque[Tuple[dict, Dict[str, Any]]] = collections.deque()
        self._errors: Deque[Tuple[str, BaseException]] = collections.deque()
        self._idle = threading.Condition()
        self._pending = 0          # queued and not yet done (guarded by _idle)
        self._stop = False
        self._closed = False
        self._streams: Dict[int, Any] = {}  # CUDA device -> this thread's side stream
        self._sleeping = False     # the thread waits (or is about to): a queued message writes the pipe
        self._thread_stats = ThreadStats()
        self._final_cpu = 0.0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._seen = {k: getattr(client, k, None) for k in _WELCOME_FIELDS}
        self._pipe_open = pipe_open = [True]
        wake_w = self._wake_w
        # Dropped without close(): the callback wakes the thread, which says bye and ends
        # (after close() the descriptor number may belong to someone else: not written).
        owner = weakref.ref(self, lambda _ref: pipe_open[0] and _poke(wake_w))
        self._thread = threading.Thread(target=ClientThread._run, name="orbit-client", daemon=True,
                                        args=(owner, client, self._socket, self._wake_r,
                                              self._wake_w))
        self._thread.start()

    # ---- the training thread's side -------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _WELCOME_FIELDS:
            return self.__dict__["_seen"][name]
        raise AttributeError(name)

    def send_snapshot(self, step: int, loss: float, *,
                      prepare: Optional[Callable[[], Dict[str, Any]]] = None,
                      **fields: Any) -> bool:
        """Queues a snapshot. `prepare`, when given, runs on the thread first and returns
        fields to add (deferred probe work); tensors in the fields are brought to the host
        there. True: queued (whether it reached ZeroMQ shows in `stats`)."""
        if _needs_device_event(fields) or prepare is not None and torch.cuda.is_available() \
                and torch.cuda.is_initialized():
            event = torch.cuda.Event()
            event.record()  # on the training thread's current stream: no wait here
            fields["_event"] = (event, torch.cuda.current_device())
        return self._queue("snapshot", (step, loss), dict(fields, _prepare=prepare))

    def send_ack(self, **fields: Any) -> bool:
        return self._queue("ack", (), fields)

    def poll(self, *args: Any, **kwargs: Any) -> List[dict]:
        """The replies the thread has received and decoded so far; never waits."""
        out = []
        while self._inbox:
            message, seen = self._inbox.popleft()
            self._seen = seen
            out.append(message)
        return out

    def take_errors(self) -> List[Tuple[str, BaseException]]:
        """Failures on the thread since the last call: (where, error)."""
        out = []
        while self._errors:
            out.append(self._errors.popleft())
        return out

    def flush(self, timeout: float = _CLOSE_WAIT_S) -> bool:
        """Waits until everything queued has been handed to ZeroMQ; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def stats(self):
        self.flush(1.0)
        return self._client.stats

    @property
    def thread_stats(self) -> ThreadStats:
        return dataclasses.replace(self._thread_stats)

    def cpu_time(self) -> float:
        """CPU seconds the thread has used so far (what the work moved off the
        training thread costs; it still runs on this machine)."""
        ident = self._thread.ident
        if self._thread.is_alive() and ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(ident))
            except (OSError, AttributeError):
                pass
        return self._final_cpu

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Sends what is queued, then bye; returns when the thread has done so."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake()
        self._thread.join(_CLOSE_WAIT_S)
        if self._thread.is_alive():  # never expected: sends do not block
            self._errors.append(("close", TimeoutError("orbit client thread did not finish")))
        if not self._thread.is_alive():  # else it is stuck and may still poll the pipe
            self._pipe_open[0] = False
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    def __enter__(self) -> "ClientThread":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _queue(self, kind: str, args: tuple, fields: dict) -> bool:
        if self._closed:
            raise RuntimeError("OrbitClient is closed")
        with self._idle:
            self._pending += 1
        self._outbox.append((kind, args, fields))
        st = self._thread_stats
        st.queued += 1
        if len(self._outbox) > st.queue_max:
            st.queue_max = len(self._outbox)
        self._wake()
        return True

    def _wake(self) -> None:
        # The thread drains the queue before it sleeps and says so (`_sleeping`), so a
        # wake-up while it runs is not needed: one write per sleep, not per message.
        if not self._sleeping and not self._stop:
            return
        self._sleeping = False
        try:
            os.write(self._wake_w, b"\0")
        except OSError as e:  # a full pipe already wakes the thread
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBADF):
                raise

    # ---- the thread ---------------------------------------------------------------------
    @staticmethod
    def _run(ref: "weakref.ref[ClientThread]", client: Any, sock: Any, wake_r: int,
             wake_w: int) -> None:
        """The thread's loop. It holds its owner only weakly between wake-ups: an owner
        dropped without close() ends the thread (bye sent, socket closed), as a dropped
        OrbitClient closes its socket."""
        poller = None
        if zmq is not None and hasattr(zmq, "Poller") and sock is not None:
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(wake_r, zmq.POLLIN)
        readable = True
        orphaned = False
        with torch.no_grad():
            while True:
                me = ref()
                if me is None:
                    orphaned = True
                    break
                sent = me._send_queued()
                # Read only when the socket says so (or to say hello/heartbeat when idle):
                # an empty non-blocking read costs more than the wait.
                if readable or poller is None:
                    me._receive()
                if me._stop and not me._outbox:
                    break
                # Asleep from here: a message queued after this line writes the pipe;
                # one queued before it is seen by the check below (no lost wake-up).
                me._sleeping = True
                if me._outbox or me._stop:
                    me._sleeping = False
                    readable = False
                    del me
                    continue
                del me
                if poller is not None:
                    events = dict(poller.poll(int(_IDLE_WAKE_S * 1000)))
                    readable = sock in events or not events and not sent
                    woken = wake_r in events
                else:
                    woken = bool(select.select([wake_r], [], [], _IDLE_WAKE_S)[0])
                me = ref()
                if me is not None:
                    me._sleeping = False
                del me
                if woken:  # one read empties it: at most a few bytes wait there
                    try:
                        os.read(wake_r, 4096)
                    except (BlockingIOError, OSError):
                        pass
            try:
                client.close()
            except Exception as e:
                if not orphaned:
                    me._errors.append(("close", e))
        if orphaned:  # nobody else has the pipe any more
            for fd in (wake_r, wake_w):
                os.close(fd)
            return
        me._final_cpu = time.thread_time()

    def _send_queued(self) -> bool:
        sent = False
        while self._outbox:
            kind, args, fields = self._outbox.popleft()
            try:
                if kind == "snapshot":
                    self._send_snapshot(args, fields)
                else:
                    self._client.send_ack(**fields)
                sent = True
            except Exception as e:
                self._errors.append((kind if kind == "ack" else "send", e))
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()
        return sent

    def _side_stream(self, device: int) -> "torch.cuda.Stream":
        """This thread's CUDA stream on `device` (made once): the probe spectra and the
        device-to-host copies run there, beside the training stream, not in its queue."""
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = torch.cuda.Stream(device=device)
        return stream

    def _send_snapshot(self, args: tuple, fields: dict) -> None:
        marker = fields.pop("_event", None)
        if marker is None:
            return self._finish_and_send(args, fields)
        event, device = marker
        stream = self._side_stream(device)
        # The side stream starts where the training stream recorded the event (the
        # values' kernels are done, later training kernels need not be); the host
        # copies at the end wait for the side stream only, on this thread.
        with torch.cuda.device(device), torch.cuda.stream(stream):
            stream.wait_event(event)
            try:
                self._finish_and_send(args, fields)
            finally:  # nothing of it may still run when the captured tensors are freed
                stream.synchronize()

    def _finish_and_send(self, args: tuple, fields: dict) -> None:
        prepare = fields.pop("_prepare", None)
        if prepare is not None:
            try:
                extra = prepare()
            except Exception as e:  # a probe failure loses the probe values, not the snapshot
                self._thread_stats.prepare_errors += 1
                self._errors.append(("probe", e))
                extra = {}
            for name, value in extra.items():
                if isinstance(value, dict) and isinstance(fields.get(name), dict):
                    fields[name] = {**value, **fields[name]}  # the trainer's own values win
                elif fields.get(name) is None:
                    fields[name] = value
        fields["grad_norm"] = host_value(fields.get("grad_norm"))
        if fields.get("spectra"):
            fields["spectra"] = {k: host_array(v) for k, v in fields["spectra"].items()}
        if fields.get("scalars"):
            scalars = {k: host_value(v) for k, v in fields["scalars"].items()}
            fields["scalars"] = {k: v for k, v in scalars.items() if np.isfinite(v)} or None
        self._client.send_snapshot(*args, **fields)

    def _receive(self) -> None:
        try:
            replies = self._client.poll()
        except Exception as e:
            self._errors.append(("poll", e))
            return
        for message in replies or ():
            seen = {k: getattr(self._client, k, None) for k in _WELCOME_FIELDS}
            self._inbox.append((message, seen))
