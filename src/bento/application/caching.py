"""CachedFunction: memoise an async function in a Cache, with stable keys and single-flight.

This is the machinery behind `bento.managers.cache.cached`; it knows nothing of named
instances (it asks `resolve()` for the Cache on each call) so the contract suites can run it
on any adapter.

* Keys are `{namespace}:{sha256 of the call's arguments as canonical JSON}`: arguments are
  bound to the signature with defaults applied (`f(1)` and `f(x=1)` share an entry) and a
  first parameter called `self` or `cls` is left out. The namespace is the function's
  `module.qualname`, the same in every process. `key=` replaces the digest by your own text.
* Values are JSON (pydantic's encoder); they are read back through the function's return
  annotation, so a `-> Order` function returns an `Order`. Nothing is pickled; nothing read
  from a cache is executed. An entry that no longer validates is dropped and recomputed.
* Single-flight: concurrent calls with one key in this process share one look-up and one
  call of the function; waiting callers get its result (or its exception). Other processes
  may compute the same key at the same time.
* Invalidation wins over a computation in flight: a result computed while this process
  invalidated the function (an event arrived) is returned to its callers but not stored, so a
  value from before the event never lands in the cache after it. Later calls start afresh.
* A cache that fails (Redis down) does not fail the call: the function runs, a warning is
  logged.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from bento.application.errors import BrokerUnavailableError, CacheKeyError, CacheValueError
from bento.application.ports.cache import Cache
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def encode_value(key: str, value: object) -> bytes:
    """JSON bytes of `value` (pydantic models, dataclasses, dates … included)."""
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise CacheValueError(key, str(exc)) from exc


class CachedFunction(Generic[P, R]):
    """See the module docstring. `invalidate_on` event types drop every entry of this function
    when one of them reaches a bus the function is bound to (`bind_invalidation`)."""

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        *,
        resolve: Callable[[], Awaitable[Cache]],
        ttl: float | None = None,
        key: Callable[..., str] | None = None,
        invalidate_on: Sequence[type[DomainEvent]] = (),
    ) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@cached wraps async functions; {function!r} is not one")
        self.function = function
        self.namespace = f"{function.__module__}.{function.__qualname__}"
        self.ttl = ttl
        self.invalidate_on = tuple(invalidate_on)
        self._resolve = resolve
        self._key = key
        self._signature = inspect.signature(function)
        first = next(iter(self._signature.parameters), None)
        self._skip_first = first in {"self", "cls"}
        self._flights: dict[str, asyncio.Task[R]] = {}
        self._epoch = 0  # bumped by every invalidation in this process
        self._decoder = _decoder_for(function)
        functools.update_wrapper(self, function)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Methods: the instance becomes the first argument (left out of the key).
        call: Callable[..., Awaitable[R]] = self.__call__
        return self if instance is None else functools.partial(call, instance)

    def key_for(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of a call with these arguments."""
        if self._key is not None:
            return f"{self.namespace}:{self._key(*args, **kwargs)}"
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise CacheKeyError(self.namespace, str(exc)) from exc
        bound.apply_defaults()
        items = list(bound.arguments.items())[1 if self._skip_first else 0 :]
        try:
            canonical = json.dumps(
                pydantic_core.to_jsonable_python(dict(items)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            raise CacheKeyError(self.namespace, str(exc)) from exc
        return f"{self.namespace}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = self.key_for(*args, **kwargs)
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(self._load(key, args, kwargs))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # A caller that is cancelled leaves the shared call running for the others.
        return await asyncio.shield(flight)

    async def _load(self, key: str, args: Any, kwargs: Any) -> R:
        epoch = self._epoch
        cache: Cache | None = None
        try:
            cache = await self._resolve()
            found = await cache.get(key)
        except BrokerUnavailableError as exc:
            logger.warning("cache unavailable for %s, calling it uncached: %s", self.namespace, exc)
            return await self.function(*args, **kwargs)
        if found is not None:
            try:
                value: R = self._decoder(found)
                return value
            except (ValidationError, ValueError) as exc:
                logger.warning("dropping a cached value of %s that no longer validates: %s", self.namespace, exc)
                await cache.delete(key)
        result = await self.function(*args, **kwargs)
        data = encode_value(key, result)
        if epoch != self._epoch:
            return result  # invalidated while it ran: the value may predate the event
        try:
            await cache.set(key, data, self.ttl)
        except BrokerUnavailableError as exc:
            logger.warning("could not cache a result of %s: %s", self.namespace, exc)
        return result

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of one call (same arguments as the call); True when there was one."""
        key = self.key_for(*args, **kwargs)
        self._forget_flights(key)
        cache = await self._resolve()
        return await cache.delete(key)

    async def invalidate_all(self) -> int:
        """Drop every entry of this function; returns how many there were."""
        self._forget_flights(None)
        cache = await self._resolve()
        return await cache.delete_prefix(self.namespace + ":")

    def _landed(self, key: str, flight: asyncio.Task[R]) -> None:
        if self._flights.get(key) is flight:  # not a newer flight started after an invalidation
            del self._flights[key]

    def _forget_flights(self, key: str | None) -> None:
        # Calls in flight finish for their callers, but store nothing, and new calls do not join them.
        self._epoch += 1
        if key is None:
            self._flights.clear()
        else:
            self._flights.pop(key, None)


def _decoder_for(function: Callable[..., Any]) -> Callable[[bytes], Any]:
    try:
        annotation = typing.get_type_hints(function).get("return")
    except Exception:  # unresolvable forward references: plain JSON then
        annotation = None
    if annotation is None or annotation is Any:
        return json.loads
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    return adapter.validate_json


async def bind_invalidation(bus: MessageBus, function: CachedFunction[Any, Any]) -> list[Subscription]:
    """Subscribe `function.invalidate_on` event types on `bus` for broadcast (`group=None`:
    every process gets every event, so each drops its own entries). A published or consumed
    event of those types then drops all of the function's entries."""

    async def drop(event: DomainEvent) -> None:
        removed = await function.invalidate_all()
        logger.debug("%s invalidated %d entries of %s", type(event).__name__, removed, function.namespace)

    return [await bus.subscribe(event_type.__wire_name__, drop, group=None) for event_type in function.invalidate_on]
