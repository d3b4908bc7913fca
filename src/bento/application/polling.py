"""The poll loop shared by the outbox relay and the projection runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def poll_until_stopped(
    step: Callable[[], Awaitable[int]],
    *,
    stop: asyncio.Event | None,
    interval: float,
    max_backoff: float,
    transient: tuple[type[Exception], ...],
    label: str,
) -> None:
    """Run `step` (it returns how much work it did) until `stop` is set or the task is
    cancelled: again at once after work, after `interval` when idle, and with doubling
    back-off (up to `max_backoff`) after a `transient` error. Other errors end the loop."""
    stop = stop or asyncio.Event()
    backoff = interval
    while not stop.is_set():
        try:
            done = await step()
            backoff = interval
        except transient as exc:
            logger.warning("%s: %s; retrying in %.1fs", label, exc, backoff)
            done = 0
            backoff = min(max(backoff * 2, 0.1), max_backoff)
        if done:
            continue
        with contextlib.suppress(TimeoutError):  # the interval elapsed: look again
            async with asyncio.timeout(backoff):
                await stop.wait()
