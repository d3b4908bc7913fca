"""The application's container, for code that cannot have it injected (the named managers).

The named managers (`RedisClient.get_instance("cache")`, `EventBusManager.get_instance()` …)
are looked up by name from anywhere. They are not global objects: each named instance is
created once and cached in a registry that lives in the container (a Singleton provider
added to it), and a Resource provider closes them all at `await container.shutdown_resources()`.
This module holds the one pointer to "the" container: set it with `use_container(c)` (the
FastAPI lifespan does); otherwise a plain BentoContainer is built on first use.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from dependency_injector import containers, providers

from bento.domain.errors import BentoError

if TYPE_CHECKING:
    from bento.application.ports.capabilities import HealthStatus

logger = logging.getLogger(__name__)

REGISTRY_PROVIDER = "bento_named_instances"
LIFECYCLE_PROVIDER = "bento_named_instances_lifecycle"

_state: dict[str, Any] = {"container": None, "implicit": False}


class NotInitializedError(BentoError, RuntimeError):
    """A named instance was used before `initialize()` (or after `cleanup()`)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"{kind} instance {name!r} is not initialized; call `await {kind}.get_instance({name!r})"
            ".initialize()` first (or after cleanup())"
        )
        self.kind, self.name = kind, name


class NamedInstance(Protocol):
    """What the registry needs from a façade: identity, health and cleanup."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def close_order(self) -> int: ...

    def rebind(self, container: containers.Container) -> None:
        """Belong to `container` from now on (see `use_container`)."""

    @property
    def initialized(self) -> bool: ...

    async def health(self) -> HealthStatus: ...

    async def cleanup(self) -> None: ...


class NamedInstanceRegistry:
    """Named instances of one container, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], NamedInstance] = {}

    def get(self, kind: str, name: str, factory: Callable[[], NamedInstance]) -> NamedInstance:
        key = (kind, name.lower())
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = factory()
        return item

    def items(self) -> list[NamedInstance]:
        return list(self._items.values())

    async def close(self) -> None:
        """Clean up every instance: users of connections (buses, queues, channels) before the
        clients they may share. Every instance is tried; failures are logged with the traceback
        and the first one is raised at the end."""
        first: Exception | None = None
        for item in sorted(self._items.values(), key=lambda i: i.close_order):
            try:
                await item.cleanup()
            except Exception as exc:
                logger.exception("cleaning up %s %r failed", item.kind, item.name)
                first = first or exc
        if first is not None:
            raise first


async def _lifecycle(registry: NamedInstanceRegistry) -> AsyncIterator[NamedInstanceRegistry]:
    try:
        yield registry
    finally:
        await registry.close()


def use_container(container: containers.Container) -> containers.Container:
    """Make `container` the one the named managers use. Named instances already created in a
    container that was built implicitly (a module that called `get_instance` at import time,
    before the application set its container) move over to `container`."""
    previous = _state["container"]
    if previous is not None and previous is not container and _state["implicit"]:
        old = getattr(previous, REGISTRY_PROVIDER, None)
        if old is not None and getattr(container, REGISTRY_PROVIDER, None) is None:
            registry: NamedInstanceRegistry = old()
            container.set_provider(REGISTRY_PROVIDER, providers.Object(registry))
            for item in registry.items():
                item.rebind(container)
    _state["container"], _state["implicit"] = container, False
    return container


def get_container() -> containers.Container:
    """The container set by `use_container`, or a BentoContainer built now and kept."""
    if _state["container"] is None:
        from bento.infrastructure.container import BentoContainer

        _state["container"], _state["implicit"] = BentoContainer(), True
    container: containers.Container = _state["container"]
    return container


def reset_container() -> None:
    """Forget the current container (tests). It is not shut down here."""
    _state["container"], _state["implicit"] = None, False


def registry_of(container: containers.Container) -> NamedInstanceRegistry:
    """The container's named-instance registry, added to it on first use."""
    provider = getattr(container, REGISTRY_PROVIDER, None)
    if provider is None:
        provider = providers.Singleton(NamedInstanceRegistry)
        container.set_provider(REGISTRY_PROVIDER, provider)
    registry: NamedInstanceRegistry = provider()
    return registry


async def track(container: containers.Container) -> None:
    """Open the Resource that closes the named instances at `shutdown_resources()`.
    Façades call it from `initialize()`, so a container with none pays nothing."""
    provider = getattr(container, LIFECYCLE_PROVIDER, None)
    if provider is None:
        provider = providers.Resource(_lifecycle, registry_of(container))
        container.set_provider(LIFECYCLE_PROVIDER, provider)
    if not provider.initialized:
        await provider()


async def shutdown(container: containers.Container) -> None:
    """Clean up the named instances, then `container.shutdown_resources()` (which returns None
    rather than an awaitable when no async Resource was opened)."""
    try:
        if getattr(container, REGISTRY_PROVIDER, None) is not None:
            await registry_of(container).close()
    finally:
        outcome = container.shutdown_resources()
        if outcome is not None:
            await outcome
