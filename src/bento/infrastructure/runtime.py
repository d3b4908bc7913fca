"""The runtime a container hosts: one call starts, one call stops everything a service runs.

Each hosted piece is its own provider on BentoContainer (see `bento.infrastructure.hosted`),
which a service can override:

- `command_consumers`, `query_consumers`: consumers for the handlers it registers (when
  `COMMAND__BACKEND` names a broker), one competing group per command or query topic;
- `subscriptions`: one per EventHandler and `@subscribe` function on the configured MessageBus,
  each in its own group, through the `inbox` the settings select; with a broker as event bus,
  `EventBus.publish` forwards to it;
- `projections`: a runner per Projection provider (with a broker and the private memory store,
  projections consume the relayed events from the broker);
- `outbox_relay`: event store → MessageBus.
The inbox and the stream lock are the container's `inbox` and `stream_lock` providers.

The runtime also keeps the operational gauges (`runtime.gauges`, bento.application.gauges):
outbox lag, each projection's lag, and the backlog and dead-letter depth of every group
subscription whose bus offers BacklogProbe, refreshed every `TELEMETRY__GAUGE_INTERVAL`
seconds and before each `/metrics` answer.

`Runtime.start()` registers the handlers, starts the pieces in `hosted.START_ORDER` and returns
one line per thing started, which `bento run` logs; `stop()` stops them in reverse: consumers
stop taking messages (in-flight handlers finish, each adapter's drain timeout), subscriptions
and projections next, the relay last (it flushes what the handlers appended). The container's
`shutdown_resources()` stops the runtime before it closes any bus or store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from dependency_injector import containers

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application import gauges as gauge_sources
from bento.application.buses import CommandBus, QueryBus
from bento.application.gauges import Gauges
from bento.application.outbox import OutboxRelay
from bento.application.ports.backlog import backlog_probe
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.application.remote import RemoteCommandBus, RemoteQueryBus, RequestReply
from bento.application.serialization import JsonCodec
from bento.infrastructure.backends import COMMAND_BUSES
from bento.infrastructure.hosted import START_ORDER, HostedPiece

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

    return RequestReply(open_transport, service=service, timeout=settings.request_timeout, system=settings.backend)


def command_bus(link: RequestReply | None) -> CommandBus:
    return CommandBus() if link is None else RemoteCommandBus(link)


def query_bus(link: RequestReply | None) -> QueryBus:
    return QueryBus() if link is None else RemoteQueryBus(link)


# -- the runtime ----------------------------------------------------------------------------
@dataclass
class Runtime:
    """What one service process runs; built by the container (`await container.runtime()`)."""

    container: containers.Container
    pieces: dict[str, HostedPiece] = field(default_factory=dict)
    started: bool = False
    lines: list[str] = field(default_factory=list)
    gauges: Gauges = field(default_factory=Gauges)
    _sampling: asyncio.Task[None] | None = None
    _stop_sampling: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> list[str]:
        """Open and start every piece; returns one line per piece for the operator. A piece
        failing to start stops the ones already started, then the error propagates."""
        from bento.infrastructure.container import register_handlers, resolve

        await register_handlers(self.container)
        lines: list[str] = []
        try:
            for name in START_ORDER:
                piece: HostedPiece = await resolve(getattr(self.container, name))
                self.pieces[name] = piece
                lines.extend(await piece.start())
            await self._watch()
        except BaseException:
            await self.stop()
            raise
        interval = self.container.settings().telemetry.gauge_interval
        if interval > 0:
            self._stop_sampling = asyncio.Event()
            self._sampling = asyncio.create_task(
                self.gauges.run(interval=interval, stop=self._stop_sampling), name="gauges"
            )
        self.started, self.lines = True, lines
        return lines

    async def _watch(self) -> None:
        """Gauge what the pieces started (duck-typed, so a service's replacement piece is
        gauged when it exposes the same attributes): the relay's and each runner's lag, and the
        backlog of every group subscription on the bus it was made on."""
        settings = self.container.settings()
        self.gauges = Gauges()
        for piece in self.pieces.values():
            relay = getattr(piece, "relay", None)
            if isinstance(relay, OutboxRelay):
                source = gauge_sources.outbox_lag(relay.name, relay.store, relay.checkpoints)
                self.gauges.add(f"outbox {relay.name}", source)
            for runner in getattr(piece, "runners", []):
                source = gauge_sources.projection_lag(runner.name, runner.store, runner.checkpoints)
                self.gauges.add(f"projection {runner.name}", source)
            subscriptions: list[Subscription] = getattr(piece, "subscriptions", [])
            bus = getattr(piece, "message_bus", None)
            system = settings.event_backend
            link = getattr(getattr(piece, "command_bus", None) or getattr(piece, "query_bus", None), "link", None)
            if isinstance(link, RequestReply) and subscriptions:
                bus, system = await link.transport(), settings.default_command.backend
            if bus is not None:
                self._watch_backlog(bus, system, subscriptions)

    def _watch_backlog(self, bus: object, system: str, subscriptions: Sequence[Subscription]) -> None:
        """Gauge the backlog of `subscriptions` (group ones; broadcast ones have no lasting queue)."""
        probe = backlog_probe(bus)
        targets = sorted({(s.topic, s.group) for s in subscriptions if s.group is not None})
        if probe is not None and targets:
            self.gauges.add(
                f"{system} backlog {targets[0][0]}…", gauge_sources.subscription_backlog(probe, system, targets)
            )

    @property
    def subscriptions(self) -> list[Subscription]:
        """Every live broker subscription of the pieces."""
        return [s for piece in self.pieces.values() for s in getattr(piece, "subscriptions", [])]

    async def lag(self) -> dict[str, int]:
        """Events each projection and the relay still have to process (for /readyz)."""
        out: dict[str, int] = {}
        for piece in self.pieces.values():
            lag = getattr(piece, "lag", None)
            if callable(lag):
                out.update(await lag())
        return out

    async def stop(self) -> None:
        """Stop the pieces in reverse start order; one failing to stop does not keep the others
        running. Idempotent."""
        self._stop_sampling.set()
        if self._sampling is not None:
            await asyncio.gather(self._sampling, return_exceptions=True)
            self._sampling = None
        for name in reversed(START_ORDER):
            piece = self.pieces.pop(name, None)
            if piece is None:
                continue
            try:
                await piece.stop()
            except Exception as exc:
                logger.warning("could not stop %s: %s", name, exc)
        self.started = False


async def open_runtime(container: containers.Container) -> AsyncIterator[Runtime]:
    """A Resource: the started runtime, stopped on `shutdown_resources` (before anything else)."""
    runtime = Runtime(container)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
