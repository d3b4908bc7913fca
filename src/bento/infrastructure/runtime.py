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

`Runtime.start()` registers the handlers, starts the pieces in `hosted.START_ORDER` and returns
one line per thing started, which `bento run` logs; `stop()` stops them in reverse: consumers
stop taking messages (in-flight handlers finish, each adapter's drain timeout), subscriptions
and projections next, the relay last (it flushes what the handlers appended). The container's
`shutdown_resources()` stops the runtime before it closes any bus or store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from dependency_injector import containers

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.buses import CommandBus, QueryBus
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

    return RequestReply(open_transport, service=service, timeout=settings.request_timeout)


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
        except BaseException:
            await self.stop()
            raise
        self.started, self.lines = True, lines
        return lines

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
