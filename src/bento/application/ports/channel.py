"""ChannelPort: streaming channels for SSE and live updates (what ChannelManager hands out).

Unlike the MessageBus, a channel is fire-and-forget fan-out to whoever listens now:
no groups, no acknowledgement, no redelivery. It carries JSON-able data, not domain
events, to browsers and other live clients.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel

from bento.application.ports.capabilities import HealthStatus
from bento.domain.metadata import new_message_id


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message on a channel. `pattern` is the psubscribe pattern it matched, if any."""

    channel: str
    data: Any
    event: str | None = None
    id: str = field(default_factory=new_message_id)
    pattern: str | None = None

    def to_sse(self) -> str:
        """The message as one Server-Sent Events frame (`id`, optional `event`, JSON `data`)."""
        payload = encode_data(self.data)
        lines = [f"id: {self.id}"]
        if self.event:
            lines.append(f"event: {_one_line(self.event)}")
        lines.extend(f"data: {line}" for line in payload.split("\n"))
        return "\n".join(lines) + "\n\n"


def encode_data(data: Any) -> str:
    """Channel data as compact JSON. Dates, UUIDs, decimals and pydantic models are written
    the usual way; anything else JSON cannot hold raises TypeError (adapters: PublishError)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: object) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


class ChannelSubscription(Protocol):
    """A live subscription: iterate it for messages (in publish order per channel).

    Listening starts at `start()`, at `async with`, or at the first iteration, whichever
    comes first; only messages published after that are received. Leaving `async for`
    (break, error, or the client going away) or `aclose()` ends it; so does a timeout
    around the iteration, so wait with `receive(within=…)` instead. Each subscription
    has a bounded queue: when it is full the OLDEST queued message is dropped and
    counted in `dropped`, so a stalled reader never blocks the publisher or the others
    and never grows memory without bound. Iteration ends when the channel closes."""

    @property
    def dropped(self) -> int: ...

    async def start(self) -> None: ...

    async def receive(self, within: float | None = None) -> ChannelMessage | None:
        """The next message, or None after `within` seconds without one (the subscription
        stays open, e.g. for SSE keep-alives); BusClosedError once it has ended."""
        ...

    async def aclose(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[ChannelMessage]: ...

    async def __aenter__(self) -> ChannelSubscription: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


class ChannelPort(Protocol):
    """Named streams of JSON-able data to live listeners (at-most-once).

    `publish(channel, data, event=None)` returns once the backend took the message;
    every subscription listening to `channel` (or a matching pattern) then gets it.
    `psubscribe` patterns use `*` (any run of characters), `?` (one character) and
    `[seq]` (one of seq), as Redis PSUBSCRIBE and fnmatch do. `close()` is idempotent
    and ends every open subscription's iteration."""

    async def publish(self, channel: str, data: Any, event: str | None = None) -> None: ...

    def subscribe(self, channel: str) -> ChannelSubscription: ...

    def psubscribe(self, pattern: str) -> ChannelSubscription: ...

    async def health_check(self) -> HealthStatus: ...

    async def close(self) -> None: ...
