"""The pieces a service process hosts, one container provider each, so a service can replace
any of them (`container.outbox_relay.override(providers.Object(MyRelay()))`).

Every piece has `start() -> list[str]` (one line per thing started, for the operator) and
`stop()`; relays and projection runners also report `lag()`. `Runtime` (runtime.py) starts them
in START_ORDER and stops them in the reverse: command and query consumers stop taking messages
first (their in-flight handlers finish), then subscriptions and projections, and the outbox relay
last, so it flushes what those handlers appended — all before any bus or store is closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from dependency_injector import containers, providers

from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.consumers import bind_event_handlers, group_name
from bento.application.outbox import OutboxRelay
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.inbox import Inbox
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.application.projections import Projection, ProjectionRunner
from bento.application.publishing import MessageBusEventPublisher
from bento.application.remote import RemoteCommandBus, RemoteQueryBus
from bento.application.serialization import JsonCodec
from bento.infrastructure.projection_feed import BrokerProjectionFeed

logger = logging.getLogger(__name__)

#: The container providers of the hosted pieces, in the order they start (they stop in reverse):
#: what consumes commands starts last and stops first.
START_ORDER = ("outbox_relay", "projections", "subscriptions", "query_consumers", "command_consumers")


class HostedPiece(Protocol):
    """What `Runtime` needs of a piece; a service's replacement implements this."""

    async def start(self) -> list[str]: ...

    async def stop(self) -> None: ...


@dataclass
class _Consumers:
    """A piece made of broker subscriptions; `stop` cancels them (each waits for its in-flight
    handlers), most recent first."""

    subscriptions: list[Subscription] = field(default_factory=list, init=False)

    async def stop(self) -> None:
        while self.subscriptions:
            sub = self.subscriptions.pop()
            try:
                await sub.cancel()
            except Exception as exc:  # keep stopping the rest
                logger.warning("could not cancel subscription %s: %s", sub.topic, exc)


@dataclass
class CommandConsumers(_Consumers):
    """One competing group per command topic, when `COMMAND__BACKEND` names a broker; each
    consumed command goes through the inbox (a redelivered command is absorbed)."""

    command_bus: CommandBus
    inbox: Inbox | None = None

    async def start(self) -> list[str]:
        if not isinstance(self.command_bus, RemoteCommandBus):
            return []
        self.subscriptions.extend(await self.command_bus.serve_all(inbox=self.inbox))
        return [f"command handler: topic {s.topic} group {s.group}" for s in self.subscriptions]


@dataclass
class QueryConsumers(_Consumers):
    """One competing group per query topic, when `COMMAND__BACKEND` names a broker."""

    query_bus: QueryBus

    async def start(self) -> list[str]:
        if not isinstance(self.query_bus, RemoteQueryBus):
            return []
        self.subscriptions.extend(await self.query_bus.serve_all())
        return [f"query handler: topic {s.topic} group {s.group}" for s in self.subscriptions]


@dataclass
class Subscriptions(_Consumers):
    """One subscription per EventHandler and `@subscribe` function, each in its own group
    (`{service}.{subscriber}`) through the inbox; with a broker as event bus, `EventBus.publish`
    forwards to it, so local subscribers consume from the broker too."""

    message_bus: MessageBus
    event_bus: EventBus
    service: str
    event_backend: str
    inbox: Inbox | None = None

    async def start(self) -> list[str]:
        found = await bind_event_handlers(self.message_bus, self.event_bus, service=self.service, inbox=self.inbox)
        self.subscriptions.extend(found)
        lines = [f"subscription: topic {s.topic} group {s.group}" for s in found]
        if self.event_backend != "inprocess":
            self.event_bus.forward_to(MessageBusEventPublisher(self.message_bus).publish)
            lines.append(f"event bus: publishes to {self.event_backend}")
        return lines


@dataclass
class OutboxRelayPiece:
    """The outbox relay (event store → message bus) in a background task. `stop` flushes what
    is left, then ends the loop."""

    store: EventStore
    bus: MessageBus
    checkpoints: CheckpointStore
    codec: JsonCodec
    service: str
    relay: OutboxRelay | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> list[str]:
        relay = OutboxRelay(self.store, self.bus, self.checkpoints, name=f"{self.service}.outbox", codec=self.codec)
        self.relay, self._stop = relay, asyncio.Event()
        self._task = asyncio.create_task(relay.run(stop=self._stop), name="outbox relay")
        return [f"outbox relay: {type(self.store).__name__} -> {type(self.bus).__name__} ({relay.name})"]

    async def lag(self) -> dict[str, int]:
        if self.relay is None:
            return {}
        head = await self.relay.store.last_position()
        return {f"relay:{self.relay.name}": max(head - await self.relay.position(), 0)}

    async def stop(self) -> None:
        self._stop.set()
        if self.relay is not None and self._task is not None:
            try:
                await self.relay.run_until_caught_up()  # flush what the handlers appended
            except Exception as exc:
                logger.warning("outbox relay could not flush at shutdown: %s", exc)
        await _cancel(self._task)
        self._task = None


@dataclass
class Projections(_Consumers):
    """A runner per Projection provider of the container, reading the event store. With a
    broker and the private memory store, projections consume the relayed events from the
    broker instead (one group per projection and topic)."""

    host: containers.Container
    store: EventStore
    checkpoints: CheckpointStore
    message_bus: MessageBus
    codec: JsonCodec
    service: str
    from_broker: bool
    runners: list[ProjectionRunner] = field(default_factory=list, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    async def start(self) -> list[str]:
        from bento.infrastructure.container import resolve  # the container module imports this one

        lines: list[str] = []
        self._stop = asyncio.Event()
        for provider in self.host.traverse(types=[providers.Factory, providers.Singleton]):
            cls = getattr(provider, "cls", None)
            if not (isinstance(cls, type) and issubclass(cls, Projection)):
                continue
            projection: Projection = await resolve(provider)
            if self.from_broker:
                feed = BrokerProjectionFeed(projection, self.codec)
                group = group_name(self.service, f"projection.{projection.name}")
                for wire_name in sorted(projection.handled_types()):
                    self.subscriptions.append(await self.message_bus.subscribe(wire_name, feed.apply, group=group))
                    lines.append(f"projection: {projection.name} from topic {wire_name} group {group}")
                continue
            runner = ProjectionRunner(projection, self.store, self.checkpoints, codec=self.codec)
            self.runners.append(runner)
            self._tasks.append(asyncio.create_task(runner.run(stop=self._stop), name=runner.name))
            lines.append(f"projection: {runner.name} from {type(self.store).__name__}")
        return lines

    async def lag(self) -> dict[str, int]:
        return {f"projection:{r.name}": (await r.status()).lag for r in self.runners}

    async def stop(self) -> None:
        await super().stop()
        self._stop.set()
        for task in self._tasks:
            await _cancel(task)
        self._tasks.clear()
        self.runners.clear()


def service_name(settings: Any) -> str:
    """`settings.service.name` (a provider cannot spell it: `.provided.service.name` is the
    attribute getter's own `name`)."""
    name: str = settings.service.name
    return name


def projections_from_broker(event_backend: str, event_store_backend: str) -> bool:
    """A memory event store is private to this process: with a broker, projections hosted here
    read the events other processes relay to it."""
    return event_backend != "inprocess" and event_store_backend == "memory"


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
