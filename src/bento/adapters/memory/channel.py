"""InMemoryChannel: ChannelPort inside one process (`CHANNEL__{NAME}__BACKEND=memory`).

Patterns use fnmatch (`*`, `?`, `[seq]`), as Redis PSUBSCRIBE does. Data goes through
JSON once per publish (as it would over Redis), so what works here works there;
every subscriber gets the same decoded object, to be treated as read-only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import time
from typing import Any

from bento.adapters.memory.settings import InMemoryChannelSettings
from bento.adapters.shared.channel_fanout import Fanout, QueuedSubscription
from bento.application.errors import BusClosedError, PublishError
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.channel import ChannelMessage, encode_data


class InMemoryChannel:
    """See the module docstring."""

    def __init__(self, settings: InMemoryChannelSettings | None = None) -> None:
        self.settings = settings or InMemoryChannelSettings()
        self._fanout = Fanout()
        self._closed = False

    async def publish(self, channel: str, data: Any, event: str | None = None) -> None:
        if self._closed:
            raise BusClosedError(f"cannot publish to {channel!r}: the channel is closed")
        try:
            data = json.loads(encode_data(data))
        except (TypeError, ValueError) as exc:
            raise PublishError(channel, f"data is not JSON-serialisable: {exc}") from exc
        message = ChannelMessage(channel, data, event)
        self._fanout.offer(self._fanout.channels.get(channel), message)
        for pattern, subs in list(self._fanout.patterns.items()):
            if fnmatch.fnmatchcase(channel, pattern):
                self._fanout.offer(subs, dataclasses.replace(message, pattern=pattern))

    def subscribe(self, channel: str) -> QueuedSubscription:
        return self._subscription(channel, pattern=False)

    def psubscribe(self, pattern: str) -> QueuedSubscription:
        return self._subscription(pattern, pattern=True)

    def _subscription(self, target: str, *, pattern: bool) -> QueuedSubscription:
        if self._closed:
            raise BusClosedError(f"cannot subscribe to {target!r}: the channel is closed")
        return QueuedSubscription(
            target,
            pattern=pattern,
            queue_size=self.settings.queue_size,
            register=self._add,
            unregister=self._remove,
        )

    async def _add(self, sub: QueuedSubscription) -> None:
        if self._closed:
            raise BusClosedError(f"cannot subscribe to {sub.target!r}: the channel is closed")
        self._fanout.add(sub)

    async def _remove(self, sub: QueuedSubscription) -> None:
        self._fanout.remove(sub)

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        return HealthStatus(
            healthy=not self._closed,
            component="channel-memory",
            latency_ms=(time.perf_counter() - started) * 1000,
            detail="closed" if self._closed else f"{self._fanout.count()} subscription(s)",
        )

    async def close(self) -> None:
        self._closed = True
        self._fanout.end_all()

    async def __aenter__(self) -> InMemoryChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
