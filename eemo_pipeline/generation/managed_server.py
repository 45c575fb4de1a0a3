"""A model server that the pipeline starts and looks after itself (``vllm serve ...``) for the time of a step.

``ManagedServer`` runs a command line (``{port}`` in it replaced by the port) in a process group of its own with its
output appended to a log file, and waits until ``GET /v1/models`` answers. A server that dies is started again on
the same port (so its URL stays), up to ``max_restarts`` times, each start waited for like the first; meanwhile
the generation client's outage handling holds the requests. ``stop`` sends SIGTERM to the process group and
SIGKILL after ``stop_grace_s``. On Linux the server also gets SIGTERM when the thread that started it ends, so a
step process killed outright leaves no server behind. Plain Python: the Dagster resource ``ManagedModelServer``
(``eemo_pipeline.resources``) drives it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from eemo_pipeline.generation.processes import end_with_parent
from eemo_pipeline.settings import redact

PORT_PLACEHOLDER = "{port}"
READY_PATH = "/v1/models"
POLL_S = 0.25  # between readiness probes while it starts
PROBE_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 4000


class ServerFailed(RuntimeError):
    """The command did not become a healthy server: it exited, or did not answer within the start timeout, or its
    port was taken. The message ends with the end of its log."""


class _Stopping(Exception):
    """``stop`` was called while the server was starting."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the system's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class ManagedServer:
    """One server process, started by ``start`` (or ``with``), restarted when it dies, stopped by ``stop``.

    ``base_url`` is ``http://<host>:<port>/v1``; ``models`` the ids its ``GET /v1/models`` listed when it last
    became ready; ``restarts`` how often it was started again; ``pid`` the live process's id (its process group's
    too). ``on_event`` receives a line for every restart and for giving up."""

    def __init__(self, command: str, log_path: Path, port: int, *, host: str = "127.0.0.1",
                 start_timeout_s: float = 900.0, max_restarts: int = 3, stop_grace_s: float = 30.0,
                 on_event: Callable[[str], None] | None = None):
        if not command.strip():
            raise ValueError("the model server's command is empty")
        if port <= 0:
            raise ValueError(f"the model server needs a port (free_port() picks one), not {port}")
        self.command, self.log_path, self.port, self.host = command, Path(log_path), port, host
        self.start_timeout_s, self.max_restarts, self.stop_grace_s = start_timeout_s, max_restarts, stop_grace_s
        self.on_event = on_event or (lambda line: None)
        self.models: list[str] = []
        self.restarts = 0
        self.pids: list[int] = []  # every process started, in order
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the command and return once it answers ``GET /v1/models``; ``ServerFailed`` (the process stopped)
        when it exits first, when it does not answer within ``start_timeout_s`` or when the port is taken."""
        if _in_use(self.host, self.port):
            raise ServerFailed(f"port {self.port} on {self.host} is in use already: another server would answer "
                               "for this one; choose another port (0: any free one)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            process = self._launch()
        try:
            self._wait_ready(process)
        except BaseException:
            self._stopping.set()
            self._terminate(process)
            raise
        self._watcher = threading.Thread(target=self._watch, name="eemo-model-server-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``stop_grace_s``; the watcher ends."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            self._terminate(process)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()

    def log_tail(self) -> str:
        """The end of the log (its last lines, scrubbed of configured keys and Bearer tokens)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]
        return redact(tail) or "(the log is empty)"

    # -- inside

    def _launch(self) -> subprocess.Popen[bytes]:
        """Start the command (the caller holds the lock); its output goes to the end of the log."""
        argv = shlex.split(self.command.replace(PORT_PLACEHOLDER, str(self.port)))
        with self.log_path.open("ab") as log:
            log.write(f"--- {datetime.now().isoformat(timespec='seconds')}: start {len(self.pids) + 1} on port "
                      f"{self.port}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, preexec_fn=end_with_parent())
            except OSError as error:
                raise ServerFailed(f"the model server's command cannot start: {error}") from None
        self._process = process
        self.pids.append(process.pid)
        return process

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        url = f"{self.base_url.removesuffix('/v1')}{READY_PATH}"
        while True:
            if self._stopping.is_set():
                raise _Stopping
            code = process.poll()
            if code is not None:
                raise ServerFailed(f"the model server exited with code {code} before it answered GET {url}; the end "
                                   f"of its log {self.log_path}:\n{self.log_tail()}")
            models = self._ready(url)
            if models is not None:
                self.models = models
                return
            if time.monotonic() >= deadline:
                self._terminate(process)
                raise ServerFailed(f"the model server did not answer GET {url} within {self.start_timeout_s:g} s "
                                   f"(start_timeout_s); stopped. The end of its log {self.log_path}:\n"
                                   f"{self.log_tail()}")
            self._stopping.wait(POLL_S)

    def _ready(self, url: str) -> list[str] | None:
        """The model ids when ``url`` answers (any status below 500: a server that wants a key is up), else None."""
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
                body = response.read()
        except urllib.error.HTTPError as error:
            return [] if error.code < 500 else None
        except (OSError, ValueError):
            return None
        try:
            return [str(card["id"]) for card in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError):
            return []

    def _watch(self) -> None:
        """Restart the server when it dies, until ``stop`` or ``max_restarts``."""
        while True:
            process = self._process
            assert process is not None
            code = process.wait()
            with self._lock:
                if self._stopping.is_set():
                    return
                if self.restarts >= self.max_restarts:
                    self.on_event(f"the model server (pid {process.pid}) exited with code {code}; not restarted: "
                                  f"max_restarts {self.max_restarts} reached. The end of its log {self.log_path}:\n"
                                  f"{self.log_tail()}")
                    return
                self.restarts += 1
                self.on_event(f"the model server (pid {process.pid}) exited with code {code}; restarting it on port "
                              f"{self.port} ({self.restarts} of max_restarts {self.max_restarts})")
                try:
                    process = self._launch()
                except ServerFailed as error:
                    self.on_event(str(error))
                    return
            try:
                self._wait_ready(process)
            except _Stopping:
                return
            except ServerFailed as error:
                if self._stopping.is_set():
                    return
                self.on_event(str(error))  # its process is stopped: the next turn counts another restart
                continue
            self.on_event(f"the model server is back at {self.base_url} (pid {process.pid})")

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the process group, then SIGKILL to what is left of it after ``stop_grace_s``."""
        group = process.pid  # start_new_session: the process leads its own group
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(group, signal.SIGKILL)  # the leader if it is still there, and any child it left
        except ProcessLookupError:
            pass
        process.wait()
