"""A private pulsar-lite broker for tests and benchmarks.

pulsar-lite (PyPI) is a Rust broker that speaks the Pulsar binary protocol. Its own
Python helper picks a port by itself and writes a fixed log file, so this launcher
runs the packaged binary directly: a free port, a data folder of our own, and a TOML
that turns the metrics endpoint off (otherwise it binds 0.0.0.0:8080 and two brokers
collide). `restart()` stops the process and starts it again on the same port and data
folder, which is how the restart-durability test simulates a broker crash.
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
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from bento.testing.services import free_port, tcp_reachable

logger = logging.getLogger(__name__)

_CONFIG = "[metrics]\nenabled = false\n"


def pulsar_lite_binary() -> Path:
    """The broker executable shipped inside the installed `pulsar_lite` package."""
    spec = importlib.util.find_spec("pulsar_lite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pulsar-lite is not installed: pip install pulsar-lite")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "pulsar-lite"
    if not binary.is_file():
        raise FileNotFoundError(f"pulsar-lite binary not found at {binary}")
    return binary


class PulsarLite:
    """One broker process; a context manager that always stops it (by PID)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="bento-pulsar-lite-"))
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"pulsar://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        if tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            # A leftover broker on this port would silently serve us: refuse instead.
            raise RuntimeError(f"port {self.port} is already in use; refusing to start pulsar-lite there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "lite.toml"
        config.write_text(_CONFIG)
        self._log = (self.data_dir / "broker.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(pulsar_lite_binary()),
                "--addr",
                f"127.0.0.1:{self.port}",
                "--db-path",
                str(self.data_dir / "broker.db"),
                "--config",
                str(config),
                "--log-level",
                "warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not tcp_reachable("127.0.0.1", self.port, timeout=0.2):
            if self.process.poll() is not None:
                code = self.process.returncode
                self._cleanup_process()
                raise RuntimeError(f"pulsar-lite exited with code {code}; see {self.data_dir / 'broker.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"pulsar-lite did not listen on port {self.port} within {timeout}s")
            time.sleep(0.02)
        logger.info("pulsar-lite pid %d serving %s (data in %s)", self.process.pid, self.url, self.data_dir)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the broker by PID, SIGKILL it if it lingers."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self._cleanup_process()

    def kill(self) -> None:
        """SIGKILL the broker (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._cleanup_process()

    def restart(self, *, crash: bool = False) -> None:
        """Stop (or kill) and start again on the same port and data folder."""
        if crash:
            self.kill()
        else:
            self.stop()
        deadline = time.monotonic() + 10
        while tcp_reachable("127.0.0.1", self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()

    def cleanup(self) -> None:
        """Stop the broker and remove the data folder if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _cleanup_process(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
