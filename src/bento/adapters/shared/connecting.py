"""Connection attempts: what every adapter does while it opens its first connection.

A driver that cannot connect logs its own warnings (clickhouse-driver prints a traceback,
aiormq and nats-py one line per retry) before the adapter raises its typed, one-line
`BrokerUnavailableError`. The adapter's error already says what failed and where, so the
drivers' loggers are raised to CRITICAL for the duration of the attempt — unless the user
asked for their detail by setting them (or the root logger) below WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

_lock = threading.Lock()
#: logger name -> (how many attempts hold it quiet, the level it had before the first)
_held: dict[str, tuple[int, int]] = {}


@contextmanager
def quiet_driver_logs(*names: str) -> Iterator[None]:
    """Silence the named driver loggers while the block runs (nested and concurrent uses
    are counted, so the level is restored once, when the last attempt ends)."""
    taken: list[str] = []
    with _lock:
        for name in names:
            logger = logging.getLogger(name)
            if name in _held:
                count, level = _held[name]
                _held[name] = (count + 1, level)
                taken.append(name)
            elif logger.getEffectiveLevel() >= logging.WARNING:
                _held[name] = (1, logger.level)
                logger.setLevel(logging.CRITICAL)
                taken.append(name)
    try:
        yield
    finally:
        with _lock:
            for name in taken:
                count, level = _held[name]
                if count > 1:
                    _held[name] = (count - 1, level)
                else:
                    del _held[name]
                    logging.getLogger(name).setLevel(level)


def url_addresses(url: str, default_port: int) -> list[tuple[str, int]]:
    """The (host, port) pairs of a service URL, including comma-separated host lists
    (`pulsar://a:6650,b:6650`); empty when the URL has no host to probe."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    found = []
    for part in filter(None, netloc.split(",")):
        host, _, port = part.rpartition(":") if part.count(":") == 1 else (part, "", "")
        try:
            found.append((host or part, int(port) if port else default_port))
        except ValueError:
            return []
    return found


async def first_reachable(addresses: list[tuple[str, int]], timeout: float) -> str | None:
    """None when one of `addresses` accepts a TCP connection within `timeout` seconds, else
    the reason the last one gave. Used before starting a client whose own retries would
    take its whole operation timeout (and log each attempt) to say the same thing."""
    reason = "no address to connect to"
    for host, port in addresses:
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            reason = f"{host}:{port}: {exc or type(exc).__name__}"
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return reason
