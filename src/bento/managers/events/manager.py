"""EventBusManager: named event buses, a look-up over the container's message buses.

    bus = EventBusManager.get_instance()             # or EventBus.get_instance() (legacy name)
    bus.configure(backend="redis", url="redis://localhost:6379/0", key_prefix="events:")
    await bus.initialize()

    @bus.subscribe(OrderCreatedEvent)
    async def on_order_created(event: OrderCreatedEvent) -> None: ...

    await bus.publish(OrderCreatedEvent(order_id="123", amount=99.99, user_id="user_1"))

Without `configure`, `initialize()` uses the container's own bus for that instance: the default
`message_bus` for "default", `message_buses.get(name)` for the others (`EVENT__{NAME}__…`), so
the application and the façade share one connection. `configure(...)` takes any field of the
backend's settings (memory, redis, rabbitmq, pulsar, nats) and opens a bus of its own, closed by
`cleanup()` or the container's shutdown.

`publish(event)` sends to the topic named by the event's wire name. `@bus.subscribe(EventType)`
binds a subscription on that topic with a consumer group of its own per subscriber
(`{service}.{subscriber}`), so every subscriber gets every event once, the broker retries and
dead-letters failures per subscriber, and replicas of one service share the work. Subscribers
declared before `initialize()` are bound by it; later ones are bound at once (and before the
next `publish`). Delivery is asynchronous: `publish` returns when the broker has the event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Self, TypeVar

from pydantic import TypeAdapter, ValidationError

from bento.application.buses import EventBus as LocalEventBus
from bento.application.consumers import bind_subscriber, group_name
from bento.application.errors import ConfigurationError
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.domain.events import DomainEvent
from bento.infrastructure.backends import MESSAGE_BUSES
from bento.infrastructure.container import resolve
from bento.infrastructure.named_buses import open_message_bus
from bento.infrastructure.settings import EventBusSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=DomainEvent)
EventFunction = Callable[[E], Awaitable[None]]


class EventBusManager(NamedFacade):
    """See the module docstring."""

    kind = "EventBusManager"
    close_order = 0

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._bus: MessageBus | None = None
        self._stack: AsyncExitStack | None = None
        self._local = LocalEventBus()
        self._groups: list[str] = []
        self._bound: dict[int, Subscription] = {}
        self._binding: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._service: str | None = None

    @property
    def initialized(self) -> bool:
        return self._bus is not None

    # -- configuration ----------------------------------------------------------------------
    def configure(self, **options: Any) -> Self:
        """Backend settings in code (`backend`, `url`, `key_prefix`, `exchange_name` …, any field
        of that backend's settings), plus `service`: the group-name prefix (default
        `SERVICE__NAME`). A `backend` starts over from that backend's defaults."""
        if options.get("backend") is not None:
            self._overrides = {}
        self._service = options.pop("service", None) or self._service
        return super().configure(**options)

    def bus_settings(self) -> EventBusSettings:
        """The effective settings of this instance (ConfigurationError when invalid)."""
        if not self._overrides:
            return self.settings.event_instance(self.name)
        base = self.settings.event.get(self.name)
        backend = self._overrides.get("backend") or (base.backend if base else MESSAGE_BUSES.default)
        data: dict[str, Any] = {}
        if base is not None and base.backend == MESSAGE_BUSES.canonical(backend):
            data = base.model_dump(exclude={"backend"})
        data.update(self._overrides)
        data["backend"] = MESSAGE_BUSES.canonical(backend)
        try:
            return TypeAdapter(EventBusSettings).validate_python(data)
        except ValidationError as exc:
            prefix = f"EventBusManager({self.name!r}).configure"
            raise ConfigurationError(
                [f"{prefix}: {'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors()]
            ) from None

    async def initialize(self) -> Self:
        """Open (or look up) the bus and bind the subscribers declared so far; idempotent."""
        if self._bus is None:
            if not self._overrides:
                if self.name == "default":
                    bus: MessageBus = await resolve(self._container.message_bus)
                else:
                    bus = await (await resolve(self._container.message_buses)).get(self.name)
            else:
                settings = self.bus_settings()
                stack = AsyncExitStack()
                bus = await stack.enter_async_context(open_message_bus(settings, self._container.codec()))
                self._stack = stack
            self._bus = bus
            await runtime.track(self._container)
        await self._bind()
        return self

    @property
    def bus(self) -> MessageBus:
        """The MessageBus adapter behind this instance."""
        if self._bus is None:
            raise self._not_initialized()
        return self._bus

    # -- subscribing ------------------------------------------------------------------------
    def subscribe(self, event_type: type[E]) -> Callable[[EventFunction[E]], EventFunction[E]]:
        """Decorator: `@bus.subscribe(OrderCreatedEvent)`; the function is returned unchanged."""
        if event_type.__abstract_event__:
            raise TypeError(f"{event_type.__qualname__} is abstract; brokers route by a concrete wire name")

        def register(fn: EventFunction[E]) -> EventFunction[E]:
            name = getattr(fn, "__qualname__", None) or repr(fn)
            self._local.add_subscriber(event_type, fn, name=name)
            group = group_name(self._service or self.settings.service.name, name)
            taken = self._groups.count(group) + sum(1 for g in self._groups if g.startswith(group + "-"))
            self._groups.append(f"{group}-{taken + 1}" if taken else group)
            if self._bus is not None:
                self._bind_soon()
            return fn

        return register

    def _bind_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: bound at the next initialize() or publish()
        task = loop.create_task(self._bind())
        self._binding.add(task)
        task.add_done_callback(self._bound_done)

    def _bound_done(self, task: asyncio.Task[None]) -> None:
        self._binding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("binding a subscriber of %r failed: %s", self.name, task.exception())

    async def _bind(self) -> None:
        bus = self._bus
        if bus is None:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            for index, subscriber in enumerate(self._local.subscribers):
                if index in self._bound:
                    continue
                self._bound[index] = await bind_subscriber(bus, subscriber, self._groups[index])

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, *events: DomainEvent) -> None:
        """Publish each event to the topic named by its wire name (key: its aggregate id)."""
        bus = self.bus
        if len(self._bound) < len(self._groups):
            await self._bind()
        for event in events:
            await bus.publish(type(event).__wire_name__, event)

    # -- lifecycle --------------------------------------------------------------------------
    async def health(self) -> HealthStatus:
        if self._bus is None:
            return HealthStatus(False, f"event:{self.name}", detail="not initialized")
        status = await self._bus.health_check()
        return HealthStatus(status.healthy, f"event:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Cancel this instance's subscriptions (in-flight handlers finish) and close a bus it
        opened itself; subscribers stay declared and are bound again by `initialize()`."""
        for task in list(self._binding):
            task.cancel()
        await asyncio.gather(*self._binding, return_exceptions=True)
        bound, self._bound = self._bound, {}
        for subscription in bound.values():
            await subscription.cancel()
        stack, self._stack, self._bus = self._stack, None, None
        if stack is not None:
            await stack.aclose()
