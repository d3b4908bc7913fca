"""OutboxRelay: publish what the event store holds, in its global order.

The store *is* the outbox. Command handlers only append; the relay reads `read_all`
after its own checkpoint, publishes each stored event to the MessageBus, and saves
the checkpoint once the bus confirmed the batch. Consequences:

- an event that reached the store is published even if the appending process died
  right after the append (nothing was supposed to publish it there);
- a relay that dies between publishing and checkpointing republishes at most that
  unconfirmed batch on restart — delivery is at-least-once and consumers deduplicate
  by message id (the Inbox port);
- events leave in store order, so per-stream order survives.

The relay sends each stored event's envelope, built by the codec from the stored
columns (`publish_raw`): it needs no event class, never fails on a type it does not
know, and consumers run their own upcasters. The topic is the event's wire name unless `topic_for` says otherwise,
and the key is the aggregate id (else the stream), so per-key ordering holds on
brokers that offer it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from bento.application import telemetry
from bento.application.errors import BrokerUnavailableError, PublishError
from bento.application.polling import poll_until_stopped
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore, StoredEvent
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec
from bento.application.wire import stored_metadata_headers

logger = logging.getLogger(__name__)

#: Transport header carrying the event's global position in the store.
POSITION_HEADER = "x-bento-position"
#: Transport header carrying the event's stream.
STREAM_HEADER = "x-bento-stream"


def stored_envelope(stored: StoredEvent, codec: JsonCodec | None = None) -> tuple[bytes, str | None]:
    """The wire envelope of a stored event (the codec builds it; no event class needed), and
    its aggregate id, the broker key that keeps one aggregate's events in order."""
    body = stored.envelope(codec or JsonCodec())
    aggregate_id = json.loads(stored.metadata).get("aggregate_id")
    return body, aggregate_id if isinstance(aggregate_id, str) and aggregate_id else None


def wire_name_topic(stored: StoredEvent) -> str:
    """Default topic: the event's wire name (`order.placed`)."""
    return stored.event_type


class OutboxRelay:
    """See the module docstring. One relay per `name` at a time; run a second one only
    as a standby (both would publish everything)."""

    def __init__(
        self,
        store: EventStore,
        bus: MessageBus,
        checkpoints: CheckpointStore,
        *,
        name: str = "outbox",
        topic_for: Callable[[StoredEvent], str] = wire_name_topic,
        select: Callable[[StoredEvent], bool] | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        codec: JsonCodec | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.store = store
        self.bus = bus
        self.checkpoints = checkpoints
        self.name = name
        self.topic_for = topic_for
        self.select = select
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.codec = codec or JsonCodec()

    async def position(self) -> int:
        return await self.checkpoints.load(self.name)

    async def relay_once(self) -> int:
        """Publish one batch after the checkpoint and advance it; returns events read."""
        position = await self.checkpoints.load(self.name)
        batch = await self.store.read_all(position, self.batch_size)
        if not batch:
            return 0
        for stored in batch:
            if self.select is not None and not self.select(stored):
                continue
            await self._publish(stored)
        await self.checkpoints.save(self.name, batch[-1].position)
        return len(batch)

    async def run_until_caught_up(self) -> int:
        """Publish everything after the checkpoint; returns how many events were read."""
        total = 0
        while True:
            read = await self.relay_once()
            if not read:
                return total
            total += read

    async def _publish(self, stored: StoredEvent) -> None:
        body, aggregate_id = stored_envelope(stored, self.codec)
        meta = json.loads(stored.metadata)
        headers = stored_metadata_headers(stored.event_id, stored.event_type, stored.schema_version, meta)
        headers[POSITION_HEADER], headers[STREAM_HEADER] = str(stored.position), stored.stream
        topic, key = self.topic_for(stored), aggregate_id or stored.stream
        if telemetry.tracer is None:
            await self.bus.publish_raw(topic, body, key=key, headers=headers)
            return
        # The relay runs later than the append, often in another process: its span links to
        # the context stored with the event; the message keeps that context, so the subscriber's
        # span joins the trace that produced the event.
        trace_context = meta.get("trace_context")
        links = telemetry.link_to(trace_context) if isinstance(trace_context, dict) else []
        attributes = {
            telemetry.DESTINATION: topic,
            telemetry.OPERATION_TYPE: "send",
            telemetry.OPERATION_NAME: "relay",
            telemetry.MESSAGE_ID: stored.event_id,
            "bento.outbox.position": stored.position,
        }
        with telemetry.span(f"send {topic}", "PRODUCER", attributes, links=links):
            await self.bus.publish_raw(topic, body, key=key, headers=headers)

    async def run(self, *, stop: asyncio.Event | None = None, max_backoff: float = 10.0) -> None:
        """Relay until `stop` is set or the task is cancelled. A bus or store that is
        unreachable (or refuses a publish) is retried with back-off from the checkpoint,
        which republishes the unconfirmed batch; other errors end the loop."""
        await poll_until_stopped(
            self.run_until_caught_up,
            stop=stop,
            interval=self.poll_interval,
            max_backoff=max_backoff,
            transient=(BrokerUnavailableError, PublishError),
            label=f"outbox relay {self.name}",
        )
