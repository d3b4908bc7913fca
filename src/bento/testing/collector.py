"""Collector: an async handler that records what it receives, for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable

from bento.domain.events import DomainEvent


class Collector:
    """Records every delivery. `behaviour(event, attempt)` may raise to refuse one."""

    def __init__(
        self,
        behaviour: Callable[[DomainEvent, int], Awaitable[None] | None] | None = None,
    ) -> None:
        self.received: list[DomainEvent] = []
        self.attempts: Counter[str] = Counter()
        self._behaviour = behaviour
        self._changed = asyncio.Event()

    async def __call__(self, event: DomainEvent) -> None:
        self.attempts[event.message_id] += 1
        if self._behaviour is not None:
            outcome = self._behaviour(event, self.attempts[event.message_id])
            if outcome is not None:
                await outcome
        self.received.append(event)
        self._changed.set()

    def ids(self) -> set[str]:
        return {e.message_id for e in self.received}

    async def wait_for(self, count: int, timeout: float = 10.0) -> set[str]:
        """Wait until `count` distinct message ids were handled; return them."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.ids()) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"expected {count} distinct messages within {timeout}s, got {len(self.ids())}"
            ) from None
        return self.ids()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await _tick(self._changed)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s") from None


async def _tick(changed: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), 0.05)
