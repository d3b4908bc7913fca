"""BacklogProbe: how far behind a subscription is, as its broker tells it.

An optional port next to MessageBus (an adapter offers it when `backlog_probe(bus)` is not
None), so an operator can answer "is it behind?" without reading any message:

- `waiting`: messages published to the subscription's topic that its group has not been
  handed yet. RabbitMQ counts the ready messages of the group's queue (a passive declare),
  NATS the durable consumer's `num_pending`, Redis the group's `lag` (XINFO GROUPS), Kafka
  the end offsets minus the group's committed offsets (which counts messages being handled
  too), the in-process bus its queue. A message waiting for a retry is not counted.
- `dead_letters`: messages in the subscription's dead-letter queue, stream or topic.

Either is None when the broker cannot tell (no such group yet, a pattern subscription, a
broker without the API): the gauge is then absent rather than a misleading zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Backlog:
    """One subscription's backlog at the moment it was asked."""

    topic: str
    group: str
    waiting: int | None
    dead_letters: int | None


class BacklogProbe(Protocol):
    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """The backlog of `group` on `topic` (read-only: creates and consumes nothing)."""
        ...


def backlog_probe(bus: object) -> BacklogProbe | None:
    """The bus itself when its adapter offers BacklogProbe, else None."""
    probe = getattr(bus, "backlog", None)
    return bus if callable(probe) else None  # type: ignore[return-value]
