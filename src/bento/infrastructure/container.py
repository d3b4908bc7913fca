"""The dependency-injector container: the only place that picks concrete adapters.

    container = BentoContainer()
    container.settings.override(providers.Object(load_settings(...)))   # optional
    bus = await container.message_bus()          # opens only the selected backend
    ...
    await container.shutdown_resources()

A service subclasses BentoContainer, adds providers for its handlers and
repositories, and calls `await register_handlers(container)` to put every handler
provider on its bus (see examples/orders/container.py).
"""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from bento.adapters.memory.inbox import InMemoryInbox
from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.handlers import CommandHandler, EventHandler, QueryHandler
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.infrastructure import builders
from bento.infrastructure.read_models import clickhouse_read_models, memory_read_models
from bento.infrastructure.settings import load_settings


class BentoContainer(containers.DeclarativeContainer):
    """Adapters chosen by settings; buses; stores. Extend it in your service."""

    settings = providers.Singleton(load_settings)

    registry = providers.Singleton(MessageRegistry)
    codec = providers.Singleton(JsonCodec, registry=registry)

    # Transport: the default event bus instance, and every named one on demand.
    message_bus = providers.Selector(
        settings.provided.event_backend,
        inprocess=providers.Resource(builders.inprocess_bus, settings.provided.default_event, codec),
        rabbitmq=providers.Resource(builders.rabbitmq_bus, settings.provided.default_event, codec),
        pulsar=providers.Resource(builders.pulsar_bus, settings.provided.default_event, codec),
        redis=providers.Resource(builders.redis_bus, settings.provided.default_event, codec),
        nats=providers.Resource(builders.nats_bus, settings.provided.default_event, codec),
    )
    message_buses = providers.Resource(builders.named_message_buses, settings.provided.event, codec)

    # In-process application buses.
    command_bus = providers.Singleton(CommandBus)
    query_bus = providers.Singleton(QueryBus)
    event_bus = providers.Singleton(EventBus)

    # Storage.
    clickhouse_engine = providers.Resource(builders.clickhouse_engine, settings.provided.clickhouse)
    stream_lock = providers.Selector(
        settings.provided.event_store.lock,
        inprocess=providers.Resource(builders.inprocess_stream_lock),
        redis=providers.Resource(builders.redis_stream_lock, settings.provided.event_store),
    )
    event_store = providers.Selector(
        settings.provided.event_store.backend,
        memory=providers.Resource(builders.memory_event_store, codec),
        clickhouse=providers.Resource(
            builders.clickhouse_event_store, clickhouse_engine, settings.provided.event_store, codec, stream_lock
        ),
    )
    checkpoint_store = providers.Selector(
        settings.provided.read_model.backend,
        memory=providers.Resource(builders.memory_checkpoints),
        clickhouse=providers.Resource(builders.clickhouse_checkpoints, clickhouse_engine),
    )
    snapshot_store = providers.Selector(
        settings.provided.event_store.backend,
        memory=providers.Resource(builders.memory_snapshots),
        clickhouse=providers.Resource(builders.clickhouse_snapshots, clickhouse_engine),
    )
    read_models = providers.Selector(
        settings.provided.read_model.backend,
        memory=providers.Resource(memory_read_models),
        clickhouse=providers.Resource(clickhouse_read_models, clickhouse_engine),
    )
    inbox = providers.Singleton(InMemoryInbox)


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
    """Close every Resource the container opened (`shutdown_resources`, awaited)."""
    result = container.shutdown_resources()
    if result is not None:
        await result
