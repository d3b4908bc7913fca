"""The runtime a container hosts: one call starts, one call stops everything a service runs.

Pieces, each started only when the service has something for it:

- command and query consumers for the handlers it registers (when `COMMAND__BACKEND` names a
  broker): one competing group per command topic;
- one subscription per EventHandler and `@subscribe` function on the configured MessageBus,
  each in its own group, through the inbox the settings select;
- with a broker as event bus, `EventBus.publish` forwards to it (subscribers then consume
  from the broker, with its retries and dead letters);
- the outbox relay (event store → MessageBus) and a runner per Projection provider (with a
  broker and the private memory store, projections consume the relayed events from the broker).

`Runtime.start()` returns one line per piece, which `bento run` logs; `stop()` stops taking
messages, lets in-flight handlers finish (each adapter's drain timeout), then stops loops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from dependency_injector import containers, providers

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.consumers import bind_event_handlers, group_name
from bento.application.outbox import OutboxRelay
from bento.application.ports.event_store import StoredEvent
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.application.projections import Projection, ProjectionRunner
from bento.application.publishing import MessageBusEventPublisher
from bento.application.remote import RemoteCommandBus, RemoteQueryBus, RequestReply
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.infrastructure.backends import COMMAND_BUSES

logger = logging.getLogger(__name__)


# -- builders of the container's command and query buses ----------------------------------
def request_reply(settings: MessageBusSettingsBase, codec: JsonCodec, service: str) -> RequestReply | None:
    """The command transport `COMMAND__…` selects, unopened (opened on first use), or None
    for the in-process default."""
    if settings.backend == COMMAND_BUSES.default:
        return None

    def open_transport() -> AbstractAsyncContextManager[MessageBus]:
        opened: AbstractAsyncContextManager[MessageBus] = COMMAND_BUSES.open(settings, codec=codec)
        return opened

    return RequestReply(open_transport, service=service, timeout=settings.request_timeout)


def command_bus(link: RequestReply | None) -> CommandBus:
    return CommandBus() if link is None else RemoteCommandBus(link)


def query_bus(link: RequestReply | None) -> QueryBus:
    return QueryBus() if link is None else RemoteQueryBus(link)


# -- the runtime ----------------------------------------------------------------------------
@dataclass
class Runtime:
    """What one service process runs; built by the container (`container.runtime()`)."""

    container: containers.Container
    subscriptions: list[Subscription] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    runners: list[ProjectionRunner] = field(default_factory=list)
    relay: OutboxRelay | None = None
    started: bool = False
    lines: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> list[str]:
        """Open and start every piece; returns one line per piece for the operator."""
        from bento.infrastructure.container import register_handlers, resolve

        c = self.container
        settings = c.settings()
        service = settings.service.name
        lines: list[str] = []
        await register_handlers(c)
        commands = await resolve(c.command_bus)
        queries = await resolve(c.query_bus)
        inbox = await resolve(c.inbox)
        if isinstance(commands, RemoteCommandBus):
            for sub in await commands.serve_all(inbox=inbox):
                self.subscriptions.append(sub)
                lines.append(f"command handler: topic {sub.topic} group {sub.group}")
        if isinstance(queries, RemoteQueryBus):
            for sub in await queries.serve_all():
                self.subscriptions.append(sub)
                lines.append(f"query handler: topic {sub.topic} group {sub.group}")
        events: EventBus = await resolve(c.event_bus)
        bus: MessageBus = await resolve(c.message_bus)
        for sub in await bind_event_handlers(bus, events, service=service, inbox=inbox):
            self.subscriptions.append(sub)
            lines.append(f"subscription: topic {sub.topic} group {sub.group}")
        if settings.event_backend != "inprocess":
            events.forward_to(MessageBusEventPublisher(bus).publish)
            lines.append(f"event bus: publishes to {settings.event_backend}")
        store = await resolve(c.event_store)
        checkpoints = await resolve(c.checkpoint_store)
        codec = c.codec()
        self.relay = OutboxRelay(store, bus, checkpoints, name=f"{service}.outbox", codec=codec)
        self.tasks.append(asyncio.create_task(self.relay.run(stop=self._stop), name="outbox relay"))
        lines.append(f"outbox relay: {type(store).__name__} -> {type(bus).__name__} ({self.relay.name})")
        # A memory store is private to this process: with a broker, projections hosted here
        # read the events other processes relay to it (one group per projection and topic).
        from_broker = settings.event_backend != "inprocess" and settings.event_store.backend == "memory"
        for provider in c.traverse(types=[providers.Factory, providers.Singleton]):
            cls = getattr(provider, "cls", None)
            if not (isinstance(cls, type) and issubclass(cls, Projection)):
                continue
            projection = await resolve(provider)
            if from_broker:
                feed = BrokerProjectionFeed(projection, codec)
                for wire_name in sorted(projection.handled_types()):
                    group = group_name(service, f"projection.{projection.name}")
                    self.subscriptions.append(await bus.subscribe(wire_name, feed.apply, group=group))
                    lines.append(f"projection: {projection.name} from topic {wire_name} group {group}")
                continue
            runner = ProjectionRunner(projection, store, checkpoints, codec=codec)
            self.runners.append(runner)
            self.tasks.append(asyncio.create_task(runner.run(stop=self._stop), name=runner.name))
            lines.append(f"projection: {runner.name} from {type(store).__name__}")
        self.started, self.lines = True, lines
        return lines

    async def lag(self) -> dict[str, int]:
        """Events each projection and the relay still have to process (for /readyz)."""
        out: dict[str, int] = {}
        for runner in self.runners:
            out[f"projection:{runner.name}"] = (await runner.status()).lag
        if self.relay is not None:
            head = await self.relay.store.last_position()
            out[f"relay:{self.relay.name}"] = max(head - await self.relay.position(), 0)
        return out

    async def stop(self) -> None:
        """Stop taking messages (in-flight handlers finish), then stop the loops."""
        for sub in reversed(self.subscriptions):
            try:
                await sub.cancel()
            except Exception as exc:  # keep stopping the rest
                logger.warning("could not cancel subscription %s: %s", sub.topic, exc)
        self.subscriptions.clear()
        self._stop.set()
        if self.relay is not None:
            try:
                await self.relay.run_until_caught_up()  # flush what the handlers appended
            except Exception as exc:
                logger.warning("outbox relay could not flush at shutdown: %s", exc)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        self.started = False


class BrokerProjectionFeed:
    """Applies events from broker subscriptions to a projection. The broker's group offsets
    are the checkpoint; positions are this process's arrival order (monotonic across restarts),
    which is what read-model versions need. Order holds per topic only: a projection that needs
    one global order reads a shared event store (ClickHouse) instead."""

    def __init__(self, projection: Projection, codec: JsonCodec) -> None:
        self.projection, self.codec = projection, codec
        self._lock = asyncio.Lock()
        self._position = 0

    async def apply(self, event: DomainEvent) -> None:
        encoded = self.codec.encode_for_store(event)
        async with self._lock:  # the projection's buffers take one batch at a time
            self._position = max(self._position + 1, time.time_ns() // 1000)
            stored = StoredEvent(
                position=self._position,
                stream=event.metadata.aggregate_id or "",
                version=0,
                event_id=encoded.event_id,
                event_type=encoded.event_type,
                schema_version=encoded.schema_version,
                data=encoded.data,
                metadata=encoded.metadata,
                recorded_at=event.timestamp,
                aggregate_type=encoded.aggregate_type,
                tenant_id=encoded.tenant_id,
                correlation_id=encoded.correlation_id,
                causation_id=encoded.causation_id,
            )
            try:
                await self.projection.apply(event, stored)
                await self.projection.commit()
            except BaseException:
                await self.projection.discard()
                raise  # the broker redelivers, then dead-letters


async def open_runtime(container: containers.Container) -> AsyncIterator[Runtime]:
    """A Resource: the started runtime, stopped on `shutdown_resources`."""
    runtime = Runtime(container)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
