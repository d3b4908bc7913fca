"""The dependency-injector container: the only place that picks concrete adapters.

    container = BentoContainer()
    container.settings.override(providers.Object(load_settings(...)))   # optional
    bus = await container.message_bus()          # opens only the selected backend
    ...
    await container.shutdown_resources()

A service subclasses BentoContainer, adds providers for its handlers and
repositories, and calls `await register_handlers(container)` to put every handler
provider on its bus (see src/bento/examples/orders/container.py).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from dependency_injector import containers, providers

from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.handlers import CommandHandler, EventHandler, QueryHandler
from bento.application.remote import RequestReply
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.infrastructure import backends, builders, hosted, runtime
from bento.infrastructure.health import open_health_checks
from bento.infrastructure.named_buses import named_message_buses
from bento.infrastructure.settings import load_settings


class BentoContainer(containers.DeclarativeContainer):
    """Adapters chosen by settings; buses; stores. Extend it in your service.

    Each port's provider is a Selector derived from its catalogue (`infrastructure.backends`),
    keyed by that port's own `backend` setting; every branch is a Resource, so only the
    selected backend is opened."""

    #: This container itself (set in __new__; providers.Self misses subclasses' providers).
    host: providers.Object[Any] = providers.Object(None)
    settings = providers.Singleton(load_settings)

    registry = providers.Singleton(MessageRegistry)
    codec = providers.Singleton(JsonCodec, registry=registry)

    # Transport: the default event bus instance, and every named one on demand.
    message_bus = backends.MESSAGE_BUSES.selector(
        settings.provided.event_backend, settings.provided.default_event, codec=codec
    )
    message_buses = providers.Resource(named_message_buses, settings.provided.event, codec)
    # Seed 003's health-check topic on the default bus (HEALTH__ENABLED=true): a publisher and a
    # subscriber checker, reported by collect_health; `await container.health_checks()` starts them.
    health_checks = providers.Resource(open_health_checks, message_bus, settings.provided.health)

    # Application buses: in-process unless COMMAND__BACKEND names a broker; then commands and
    # queries without a local handler go to the service hosting theirs (request/reply).
    service_name = providers.Callable(hosted.service_name, settings)
    command_link = providers.Singleton(runtime.request_reply, settings.provided.default_command, codec, service_name)
    command_bus = providers.Singleton(runtime.command_bus, command_link)
    query_bus = providers.Singleton(runtime.query_bus, command_link)
    event_bus = providers.Singleton(EventBus)

    # Storage. The ClickHouse engine is shared by every ClickHouse store and opened only
    # when one of them is selected.
    clickhouse_engine = providers.Resource(builders.clickhouse_engine, settings.provided.clickhouse)
    # One Resource (not a Selector), so the store depends on it directly and
    # shutdown_resources closes the store before its lock.
    stream_lock = backends.STREAM_LOCKS.resource(settings.provided.stream_lock)
    event_store = backends.EVENT_STORES.selector(
        settings.provided.event_store.backend,
        settings.provided.event_store,
        codec=codec,
        engine=clickhouse_engine,
        lock=stream_lock,
    )
    checkpoint_store = backends.CHECKPOINT_STORES.selector(
        settings.provided.checkpoint_store.backend, settings.provided.checkpoint_store, engine=clickhouse_engine
    )
    snapshot_store = backends.SNAPSHOT_STORES.selector(
        settings.provided.snapshot_store.backend, settings.provided.snapshot_store, engine=clickhouse_engine
    )
    read_models = backends.READ_MODELS.selector(
        settings.provided.read_model.backend, settings.provided.read_model, engine=clickhouse_engine
    )
    inbox = backends.INBOXES.selector(
        settings.provided.inbox.backend, settings.provided.inbox, engine=clickhouse_engine
    )

    # The pieces the service hosts, one provider each (override any of them), and the runtime
    # that starts them in order and stops them in reverse as one Resource:
    # `await container.runtime()`; `bento run` does it. See bento.infrastructure.hosted.
    command_consumers = providers.Factory(hosted.CommandConsumers, command_bus, inbox)
    query_consumers = providers.Factory(hosted.QueryConsumers, query_bus)
    subscriptions = providers.Factory(
        hosted.Subscriptions,
        message_bus,
        event_bus,
        service_name,
        settings.provided.event_backend,
        inbox,
    )
    projections = providers.Factory(
        hosted.Projections,
        host,
        event_store,
        checkpoint_store,
        message_bus,
        codec,
        service_name,
        providers.Callable(
            hosted.projections_from_broker, settings.provided.event_backend, settings.provided.event_store.backend
        ),
    )
    outbox_relay = providers.Factory(
        hosted.OutboxRelayPiece, event_store, message_bus, checkpoint_store, codec, service_name
    )
    runtime = providers.Resource(runtime.open_runtime, host)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        container = super().__new__(cls, *args, **kwargs)
        container.host.override(providers.Object(container))
        close = container.shutdown_resources
        # dependency-injector returns None when no async Resource was opened, which
        # `await container.shutdown_resources()` cannot await; always return an awaitable,
        # which also closes the command transport (opened on first use, not a Resource).
        container.shutdown_resources = lambda: _Shutdown(close, container)  # type: ignore[method-assign,assignment,misc]
        return container


async def resolve(provider: Any) -> Any:
    """Call a provider and await the result when it is async (Resources, or factories
    that depend on them)."""
    value = provider()
    if hasattr(value, "__await__"):
        value = await value
    return value


async def register_handlers(container: containers.Container) -> list[object]:
    """Build every provider of the container whose class is a Command/Query/Event
    handler and register it on the container's buses. Returns the handlers."""
    command_bus: CommandBus = await resolve(container.command_bus)
    query_bus: QueryBus = await resolve(container.query_bus)
    event_bus: EventBus = await resolve(container.event_bus)
    registered: list[object] = []
    for provider in container.traverse(types=[providers.Factory, providers.Singleton]):
        cls = getattr(provider, "cls", None)
        if not isinstance(cls, type) or not issubclass(cls, CommandHandler | QueryHandler | EventHandler):
            continue
        handler = await resolve(provider)
        if isinstance(handler, CommandHandler):
            command_bus.register(handler)
        elif isinstance(handler, QueryHandler):
            query_bus.register(handler)
        else:
            event_bus.register(handler)
        registered.append(handler)
    return registered


async def shutdown(container: containers.Container) -> None:
    """Close every Resource the container opened (`shutdown_resources`, awaited), whether or
    not an async one was opened, on any container."""
    result = container.shutdown_resources()
    if result is not None:
        await result


class _Shutdown:
    """What BentoContainer.shutdown_resources returns: awaitable in every case.

    dependency-injector closes Resources in dependency order only, and the runtime depends on
    nothing it declares, so it would stop concurrently with the buses its consumers read. When
    the runtime is running, awaiting this stops it first (consumers, then the relay's flush) and
    then closes every other Resource. Otherwise the sync Resources are closed when this is
    created and awaiting it finishes the async ones; never awaited, it leaves no 'never awaited'
    warning. Either way it closes the command transport last."""

    def __init__(self, close: Callable[[], Any], container: Any) -> None:
        self.container = container
        runtime_provider = getattr(container, "runtime", None)
        self.runtime_first = isinstance(runtime_provider, providers.Resource) and runtime_provider.initialized
        self.close = close
        self.pending = None if self.runtime_first else close()

    def __await__(self) -> Generator[Any, None, None]:
        return self._finish().__await__()

    async def _finish(self) -> None:
        if self.runtime_first:
            stopped = self.container.runtime.shutdown()
            if hasattr(stopped, "__await__"):
                await stopped
            self.pending = self.close()
        if self.pending is not None:
            await self.pending
        link = self.container.command_link()
        if isinstance(link, RequestReply):
            await link.close()
