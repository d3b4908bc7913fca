"""CacheManager and `@cached`: named caches over the cache catalogue (seed 004's cache service).

    cache_manager = CacheManager()                      # the "default" instance
    await cache_manager.set("key", "value", ttl=3600)
    value = await cache_manager.get("key")

    @cached(cache_name="api_cache", ttl=300, invalidate_on=[OrderPlaced])
    async def expensive_api_call(param: str) -> Quote: ...

Each instance reads `CACHE__{NAME}__…` (`cache_type` memory or redis, `url`, `key_prefix`,
`max_size`, `default_ttl`, `events`); an instance the settings do not name takes the default
instance's settings, under a key prefix of its own. `CacheManager(name)` is
`CacheManager.get_instance(name)`, and an instance opens itself on first use, so the seed's
examples work without an explicit `initialize()`. Values are JSON (pydantic's encoder) and
come back as JSON (`get(key, model=Order)` validates into a type); nothing is pickled.

`@cached` resolves its instance at call time (never at import), keys calls stably, runs one
call per key at a time in this process (single-flight), and with `invalidate_on=[…]` drops the
function's entries whenever one of those events is published or consumed on the instance's
event bus (`CACHE__{NAME}__EVENTS`, default the default EVENT instance), in every process.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, ParamSpec, Self, TypeVar, overload

from pydantic import TypeAdapter

from bento.application.caching import CachedFunction, bind_invalidation, encode_value
from bento.application.errors import ConfigurationError
from bento.application.ports.cache import Cache, CacheStats
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.message_bus import Subscription
from bento.domain.events import DomainEvent
from bento.infrastructure.backends import CACHES
from bento.infrastructure.settings import CacheSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_DEFAULT = "default"


class CacheManager(NamedFacade):
    """See the module docstring."""

    kind = "CacheManager"
    close_order = 30

    def __new__(cls, name: str = _DEFAULT, container: Any = None) -> Self:
        if container is None:  # `CacheManager("x")` in application code: the named instance
            return cls.get_instance(name)
        return super().__new__(cls)

    def __init__(self, name: str = _DEFAULT, container: Any = None) -> None:
        if container is None:
            return  # already built by get_instance
        super().__init__(name, container)
        self._cache: Cache | None = None
        self._stack: AsyncExitStack | None = None
        self._watched: dict[str, list[Subscription]] = {}
        self.backend = ""

    @property
    def initialized(self) -> bool:
        return self._cache is not None

    def instance_settings(self) -> CacheSettings:
        """This instance's section (`CACHE__{NAME}__…`), else the default instance's."""
        sections = self.settings.cache
        return sections.get(self.name) or sections.get(_DEFAULT) or CacheSettings()

    async def initialize(
        self,
        cache_type: str | None = None,
        *,
        url: str | None = None,
        key_prefix: str | None = None,
        max_size: int | None = None,
        default_ttl: float | None = None,
        **arguments: Any,
    ) -> Self:
        """Open the cache (idempotent until `cleanup()`); arguments override the settings, and
        `client=` shares a redis.asyncio client with a redis cache."""
        if self._cache is not None:
            return self
        self.configure(
            cache_type=cache_type, url=url, key_prefix=key_prefix, max_size=max_size, default_ttl=default_ttl
        )
        base = self.instance_settings()
        options: dict[str, Any] = {
            "cache_type": base.cache_type,
            "url": base.url.get_secret_value(),
            "key_prefix": base.key_prefix,
            "max_size": base.max_size,
            "default_ttl": base.default_ttl,
            **self._overrides,
        }
        try:
            row = CACHES.get(str(options.pop("cache_type")))
        except ConfigurationError as exc:
            raise ConfigurationError([f"CACHE__{self.name.upper()}__CACHE_TYPE: {p}" for p in exc.problems]) from None
        options["key_prefix"] = f"{options['key_prefix']}{self.name}:"
        settings = row.settings(**{k: v for k, v in options.items() if k in row.settings.model_fields})
        stack = AsyncExitStack()
        self._cache = await stack.enter_async_context(CACHES.open(settings, **arguments))
        self._stack, self.backend = stack, row.name
        await runtime.track(self._container)
        return self

    @property
    def cache(self) -> Cache:
        """The Cache adapter behind this instance."""
        if self._cache is None:
            raise self._not_initialized()
        return self._cache

    async def _opened(self) -> Cache:
        if self._cache is None:
            await self.initialize()
        return self.cache

    # -- values -------------------------------------------------------------------------------
    @overload
    async def get(self, key: str, default: Any = None) -> Any: ...

    @overload
    async def get(self, key: str, default: Any = None, *, model: type[T]) -> T | Any: ...

    async def get(self, key: str, default: Any = None, *, model: Any = None) -> Any:
        """The value stored under `key` (JSON-decoded, or validated as `model`), else `default`."""
        found = await (await self._opened()).get(key)
        return default if found is None else _decode(found, model)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` (anything pydantic can write as JSON) for `ttl` seconds (None: the
        instance's `default_ttl`, which may be forever)."""
        await (await self._opened()).set(key, encode_value(key, value), ttl)

    async def delete(self, key: str) -> bool:
        return await (await self._opened()).delete(key)

    async def get_many(self, keys: Sequence[str], *, model: Any = None) -> dict[str, Any]:
        found = await (await self._opened()).get_many(keys)
        return {key: _decode(value, model) for key, value in found.items()}

    async def set_many(self, values: Mapping[str, Any], ttl: float | None = None) -> None:
        encoded = {key: encode_value(key, value) for key, value in values.items()}
        await (await self._opened()).set_many(encoded, ttl)

    async def clear(self) -> None:
        """Empty this instance (other instances, even on the same Redis, keep their entries)."""
        await (await self._opened()).clear()

    async def stats(self) -> CacheStats:
        """Hits, misses, evictions, expirations and size (`.as_dict()` for an exporter)."""
        return await (await self._opened()).stats()

    # -- @cached support -------------------------------------------------------------------------
    async def watch(self, function: CachedFunction[Any, Any]) -> None:
        """Bind `function.invalidate_on` to this instance's event bus, once per function."""
        events = self.instance_settings().events
        if not function.invalidate_on or function.namespace in self._watched or events is None:
            return
        from bento.managers.events.manager import EventBusManager

        self._watched[function.namespace] = []  # claimed first: concurrent callers bind once
        try:
            bus = await EventBusManager.get_instance(events).initialize()
            self._watched[function.namespace] = await bind_invalidation(bus.bus, function)
        except BaseException:
            del self._watched[function.namespace]  # the next call tries again
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    async def health(self) -> HealthStatus:
        if self._cache is None:
            return HealthStatus(False, f"cache:{self.name}", detail="not initialized")
        status = await self._cache.health_check()
        return HealthStatus(status.healthy, f"cache:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Stop invalidation listeners and close the cache (idempotent)."""
        watched, self._watched = self._watched, {}
        for subscriptions in watched.values():
            for subscription in subscriptions:
                await subscription.cancel()
        stack, self._stack, self._cache = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def _decode(data: bytes, model: Any) -> Any:
    if model is None:
        return json.loads(data)
    return TypeAdapter(model).validate_json(data)


def cached(
    cache_name: str = _DEFAULT,
    ttl: float | None = None,
    *,
    key: Callable[..., str] | None = None,
    invalidate_on: Sequence[type[DomainEvent]] = (),
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
    """Memoise an async function in the named cache (see the module docstring and
    `bento.application.caching`). The result has `invalidate(*args, **kwargs)`,
    `invalidate_all()` and `key_for(*args, **kwargs)`."""

    def decorate(function: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
        async def resolve() -> Cache:
            manager = CacheManager.get_instance(cache_name)
            cache = await manager._opened()
            await manager.watch(wrapped)
            return cache

        wrapped = CachedFunction(function, resolve=resolve, ttl=ttl, key=key, invalidate_on=invalidate_on)
        return wrapped

    return decorate
