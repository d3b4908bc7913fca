"""WebSocketMessage and ClientConnection: what WebSocketManager sends, and to whom.

A ClientConnection is one open socket's state: its id (yours, e.g. a user id, or a generated
one; several sockets may share an id), when it connected, its topics, and counters of the
messages sent to it and dropped for it. Messages wait for the socket in a bounded queue of
already-encoded text, so a slow client costs at most `max_queue` messages of memory. When the
queue is full, the overflow policy decides:

* `disconnect` (the default): the client is removed at once, its queue freed, and its socket
  closed with code 1013 ("try again later"). A client that reconnects knows it missed
  messages, and everyone else's delivery is never affected.
* `drop_oldest`: the oldest queued message is dropped (counted in `dropped`) and the client
  stays connected; for feeds where only the latest state matters.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bento.domain.metadata import new_message_id

OverflowPolicy = Literal["disconnect", "drop_oldest"]

#: Close code for a client dropped by the `disconnect` policy (RFC 6455: Try Again Later).
CLOSE_SLOW_CLIENT = 1013
#: Close code when the server shuts down (RFC 6455: Going Away).
CLOSE_GOING_AWAY = 1001


class WebSocketMessage(BaseModel):
    """One message to clients, sent as JSON `{"type", "data", "id", "timestamp"}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    data: Any = None
    id: str = Field(default_factory=new_message_id)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> str:
        return self.model_dump_json()


@dataclass(eq=False)
class ClientConnection:
    """See the module docstring. Only WebSocketManager and the endpoint helper change it."""

    id: str
    topics: set[str] = field(default_factory=set)
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent: int = 0
    dropped: int = 0
    max_queue: int = 256
    overflow: OverflowPolicy = "disconnect"
    #: Why the server is closing this connection (None while it is open).
    close_reason: str | None = None
    close_code: int | None = None
    _queue: deque[str] = field(default_factory=deque, repr=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _closing: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> asyncio.Event:
        """Set when the server decided to close this connection (policy, shutdown)."""
        return self._closing

    def offer(self, text: str) -> bool:
        """Queue one encoded message; False when the policy disconnected the client instead."""
        if self.close_reason is not None:
            return False
        if len(self._queue) >= self.max_queue:
            if self.overflow == "drop_oldest":
                self._queue.popleft()
                self.dropped += 1
            else:
                self.dropped += len(self._queue) + 1
                self.close(CLOSE_SLOW_CLIENT, f"slow client: {self.max_queue} messages queued")
                return False
        self._queue.append(text)
        self._ready.set()
        return True

    async def next(self) -> str | None:
        """The next message to send, waiting for one; None once the connection is closing."""
        while not self._queue:
            if self.close_reason is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.close_reason is not None:
            return None
        return self._queue.popleft()

    def close(self, code: int, reason: str) -> None:
        """Mark the connection closing and free its queue (the endpoint closes the socket)."""
        if self.close_reason is None:
            self.close_reason, self.close_code = reason, code
        self._queue.clear()
        self._ready.set()
        self._closing.set()

    def snapshot(self) -> dict[str, Any]:
        """The connection's state as plain values (for a stats endpoint or logs)."""
        return {
            "id": self.id,
            "connected_at": self.connected_at.isoformat(),
            "topics": sorted(self.topics),
            "sent": self.sent,
            "dropped": self.dropped,
            "queued": self.queued,
            "close_reason": self.close_reason,
        }
