# SPDX-License-Identifier: Apache-2.0
"""Starts and stops a private orbitd: for demos, benchmarks and tests.

    with OrbitdProcess(find_orbitd(), "configs/default.toml") as d:
        print(d.endpoint, d.telemetry, d.control, d.journal_dir)
        d.command("status")

The daemon binds sockets in a private working directory (mode 0700; orbitd refuses
ipc sockets in a directory others can enter): ipc sockets there, or TCP on loopback
ports it picks (`transport="tcp"`). It writes its ready file there and, unless told
otherwise, journals into `<workdir>/journal`. `start` waits for the ready file;
`stop` sends SIGTERM and waits (SIGKILL only if it does not exit in time); `kill`
sends SIGKILL. Leaving the `with` block stops it and removes a working directory it
created; pass a `journal_dir` outside it to keep the journal.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Optional, Union

__all__ = ["OrbitdProcess", "OrbitdError", "find_orbitd"]

PathLike = Union[str, os.PathLike]


class OrbitdError(RuntimeError):
    """orbitd exited or did not get ready; the message ends with its log's tail."""


def find_orbitd(explicit: Optional[PathLike] = None) -> Optional[str]:
    """`explicit`, then $ORBITD, then `orbitd` on PATH, then the build directories of
    the checkout this package sits in (when it does)."""
    repo = pathlib.Path(__file__).resolve().parents[3]
    candidates = [explicit, os.environ.get("ORBITD"), shutil.which("orbitd")]
    candidates += [repo / d / "daemon" / "orbitd" for d in ("build", "build-torch", "build-py")]
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)  # Popen runs it from its own workdir
    return None


class OrbitdProcess:
    """One orbitd process with its own config, endpoints, log and ready file.

    config:      path of a TOML config, or `config_text` to write one into the workdir.
    workdir:     where sockets, ready files and logs go (default: a new private
                 temporary directory, removed by `cleanup`).
    transport:   "ipc" (sockets in workdir) or "tcp" (loopback, ports picked by orbitd).
    journal_dir: None -> `<workdir>/journal`; "" -> no --journal-dir (the config decides).
    mode, log_level: --mode / --log-level when given (None: the config decides).
    log_path:    one log file for every start (default: `<workdir>/orbitd-<n>.log`).
    """

    def __init__(self, binary: PathLike, config: Optional[PathLike] = None, *,
                 config_text: Optional[str] = None, workdir: Optional[PathLike] = None,
                 transport: str = "ipc", journal_dir: Optional[str] = None,
                 mode: Optional[str] = None, log_level: Optional[str] = "warn",
                 log_path: Optional[PathLike] = None):
        if (config is None) == (config_text is None):
            raise ValueError("give exactly one of config (a path) and config_text")
        if transport not in ("ipc", "tcp"):
            raise ValueError("transport must be 'ipc' or 'tcp'")
        # orbitd runs from its own workdir: paths the caller gave relative to its own
        # directory are made absolute here, or orbitd would not find them.
        self.binary = os.path.abspath(binary) if os.sep in str(binary) else str(binary)
        self._own_dir = workdir is None
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="orbit-", dir="/tmp"))
        os.chmod(self.workdir, 0o700)
        if config_text is not None:
            self.config_path = self.workdir / "orbitd.toml"
            self.config_path.write_text(config_text)
        else:
            self.config_path = pathlib.Path(config).absolute()
        self.config = str(self.config_path)
        self.transport = transport
        if transport == "ipc":  # short names: ipc endpoints are limited to ~107 bytes
            self.requested = {"endpoint": f"ipc://{self.workdir}/a.sock",
                              "telemetry": f"ipc://{self.workdir}/t.sock",
                              "control": f"ipc://{self.workdir}/c.sock"}
        else:
            self.requested = {k: "tcp://127.0.0.1:*" for k in ("endpoint", "telemetry", "control")}
        self.journal_dir = (str(self.workdir / "journal") if journal_dir is None
                            else journal_dir and os.path.abspath(journal_dir) or None)
        self.mode, self.log_level = mode, log_level
        self._log_path = pathlib.Path(log_path) if log_path else None
        self.log_path: Optional[pathlib.Path] = self._log_path
        self.process: Optional[subprocess.Popen] = None
        self.ready: dict = {}
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return self.ready["endpoint"]

    @property
    def telemetry(self) -> str:
        return self.ready["telemetry"]

    @property
    def control(self) -> str:
        return self.ready["control"]

    def start(self, timeout: float = 20.0, same_endpoints: bool = False) -> "OrbitdProcess":
        """Starts orbitd and waits until it has bound. same_endpoints: rebind what the
        previous start got (a TCP port included), as a restarted daemon would."""
        if self.alive():
            raise RuntimeError("orbitd is already running")
        endpoints = dict(self.ready) if same_endpoints and self.ready else dict(self.requested)
        self.starts += 1
        ready_file = self.workdir / f"ready-{self.starts}.json"
        self.log_path = self._log_path or self.workdir / f"orbitd-{self.starts}.log"
        cmd = [self.binary, "--config", self.config,
               "--endpoint", endpoints["endpoint"], "--telemetry", endpoints["telemetry"],
               "--control", endpoints["control"], "--ready-file", str(ready_file)]
        if self.journal_dir:
            cmd += ["--journal-dir", self.journal_dir]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        if self.mode:
            cmd += ["--mode", self.mode]
        if endpoints["control"].startswith("tcp"):
            # tcp control on loopback for the tcp fixtures; orbitd refuses it otherwise
            cmd += ["--allow-exposed-control"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready_file.exists():
                try:
                    self.ready = json.loads(ready_file.read_text())
                    return self
                except json.JSONDecodeError:
                    pass  # still being written
            if self.process.poll() is not None:
                raise OrbitdError(f"orbitd exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.01)
        self.kill()
        raise OrbitdError(f"orbitd did not write {ready_file} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """The tail of the current log file."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""
        except OSError:
            return ""

    def command(self, cmd: str, timeout_ms: int = 2000, curve_server_key: Optional[str] = None,
                curve_key: Any = None, **fields) -> dict:
        """One control-endpoint request; returns the decoded reply map. Under CURVE,
        orbitd's public key and an operator key pair (curve_keys.client_keys)."""
        import msgpack
        import zmq
        from .curve_keys import client_keys
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, timeout_ms)
        s.setsockopt(zmq.SNDTIMEO, timeout_ms)
        if curve_server_key is not None or curve_key is not None:
            server_public, public, secret = client_keys(curve_server_key, curve_key)
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = (
                server_public.encode(), public.encode(), secret.encode())
        try:
            s.connect(self.control)
            s.send(msgpack.packb({"v": 1, "type": "control", "cmd": cmd, **fields}, use_bin_type=True))
            return msgpack.unpackb(s.recv(), raw=False)
        finally:
            s.close(0)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the daemon gets no chance to say anything."""
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM and wait; SIGKILL only when it does not exit within `timeout`.
        Returns the exit status (None if it never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def cleanup(self) -> None:
        """Removes the working directory when this object created it."""
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "OrbitdProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.cleanup()
