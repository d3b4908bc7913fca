"""The process handling shared by the private servers that tests and benchmarks start.

Each launcher (ClickHouse, pulsar-lite, RabbitMQ) owns one server process and a data
folder. What they have in common lives here so it is written, and fixed, once: the
process runs in a session of its own with its output in a log file, readiness is polled
while watching that the process is still alive (so a crash says where its log is instead
of waiting out the deadline), and it is stopped by PID - SIGTERM, then SIGKILL - never by
name, so a developer's own server of the same kind is never touched.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

logger = logging.getLogger(__name__)


def packaged_binary(package: str, name: str, install: str) -> Path:
    """The executable `name` shipped in the `bin/` folder of the installed Python package
    `package` (pulsar-lite, tansu): FileNotFoundError naming `install` when it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name} is not installed: {install}")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    if not binary.is_file():
        raise FileNotFoundError(f"{name} binary not found at {binary}")
    return binary


class PrivateServer(ABC):
    """One server process and its data folder; a context manager that always stops it.

    Subclasses write their config, call `_launch` and then `_wait_ready` from `start()`.
    `stop()` is SIGTERM, a grace period, then `_kill_hard` (SIGKILL to the PID unless
    overridden) and `_after_stop`, a hook for servers whose launcher leaves children behind.
    """

    #: Name used in log lines and errors (the program's name).
    _program = "server"
    #: Upper bound on how long `stop()` waits after SIGTERM before SIGKILL; None means `timeout`.
    _term_grace: float | None = None

    def __init__(self, data_dir: str | os.PathLike[str] | None, *, prefix: str) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix=prefix))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @abstractmethod
    def start(self, timeout: float = 30.0) -> None:
        """Start the server (a no-op while it runs) and return once it serves clients."""

    def _launch(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `command` in a new session (so signals from the test runner's terminal
        do not reach it), stdin closed and stdout+stderr appended to `log_path`."""
        log = log_path.open("ab")
        try:
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        self._log, self.process = log, process
        return process

    def _wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        timeout_message: str,
        log_hint: Path,
        interval: float = 0.05,
    ) -> float:
        """Poll `ready()` until it is true; return the seconds it took.

        If the process exits first, raise RuntimeError naming its exit code and `log_hint`
        (where to look); past `timeout`, stop the process and raise TimeoutError."""
        process = self.process
        if process is None:
            raise RuntimeError(f"{self._program} was not launched")
        started = time.monotonic()
        while not ready():
            if process.poll() is not None:
                code = process.returncode
                self._forget_process()
                raise RuntimeError(f"{self._program} exited with code {code}; see {log_hint}")
            if time.monotonic() - started > timeout:
                self.stop()
                raise TimeoutError(timeout_message)
            time.sleep(interval)
        return time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process by PID; SIGKILL it if it is still there after the grace period."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            grace = timeout if self._term_grace is None else min(timeout, self._term_grace)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                logger.warning("%s pid %s ignored SIGTERM; killing it", self._program, process.pid)
                self._kill_hard(process)
                process.wait(timeout)
        self._after_stop(process)
        self._forget_process()

    def _kill_hard(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL after SIGTERM was ignored; by default the PID alone."""
        process.kill()

    def _after_stop(self, process: subprocess.Popen[bytes]) -> None:
        """Called once the process has exited, before it is forgotten; nothing by default."""
        return

    def _forget_process(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Stop the server and remove its folder (when this object created it)."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
