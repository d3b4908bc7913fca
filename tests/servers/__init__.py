"""Real servers for tests and benchmarks: reachability checks and private instances.

Under CI=true a missing service is a failure; locally it is a skip whose reason
names the service and the command that starts it."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_tcp(service: str, host: str, port: int, start_command: str) -> None:
    """Fail (CI) or skip (locally) the calling test when `service` is not listening."""
    if tcp_reachable(host, port):
        return
    reason = f"{service} is not reachable at {host}:{port}; start it with: {start_command}"
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private(server: Any, what: str, install: str) -> Any:
    """Start a private server (tests/servers), or fail (CI) / skip (locally) the calling test
    naming how to install it; the server is cleaned up when it cannot start."""
    try:
        server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        server.cleanup()
        reason = f"{what} could not be started ({exc}); install it with: {install}"
        if in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return server
