"""Health of everything a container has opened: what `/api/health` reports.

`collect_health(container)` finds, without opening anything new:
* the default message bus and every named one opened (`message_bus`, `message_buses`),
* the event store, when it was opened and its adapter has a `health_check()`,
* every named instance initialized (RedisClient, RabbitMQClient, ChannelManager,
  MQManager, EventBusManager),
* extra checks the application adds (`checks={"search": probe}`, an async callable returning
  a HealthStatus or a bool).
Each check runs concurrently under a timeout and reports its status, latency and detail. The
report is healthy when every *required* component is; `optional` names the ones that are not.
The same object seen twice (a manager wrapping the container's own bus) is checked once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dependency_injector import containers, providers

from bento.application.credentials import mask_credentials
from bento.application.ports.capabilities import HealthStatus
from bento.managers import runtime

HealthCheck = Callable[[], Awaitable[HealthStatus | bool]]
_PREFIXES = {
    "RedisClient": "redis",
    "RabbitMQClient": "rabbitmq",
    "ChannelManager": "channel",
    "MQManager": "mq",
    "EventBusManager": "event",
}


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    name: str
    healthy: bool
    latency_ms: float
    detail: str = ""
    required: bool = True

    @property
    def status(self) -> str:
        return "up" if self.healthy else "down"


@dataclass(frozen=True, slots=True)
class HealthReport:
    components: list[ComponentHealth] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(c.healthy for c in self.components if c.required)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "components": {
                c.name: {**{k: v for k, v in asdict(c).items() if k != "name"}, "status": c.status}
                for c in self.components
            },
        }


def _opened(provider: Any) -> Any | None:
    """The value of an initialized Resource (None when it was never opened)."""
    if isinstance(provider, providers.Resource) and provider.initialized:
        value = provider()
        if isinstance(value, asyncio.Future):
            return value.result() if value.done() and not value.cancelled() and not value.exception() else None
        return value
    return None


def discover(container: containers.Container) -> dict[str, HealthCheck]:
    """Name → check of every component the container has opened (see the module docstring)."""
    checks: dict[str, HealthCheck] = {}
    seen: set[int] = set()

    def add(name: str, target: Any, check: HealthCheck) -> None:
        if id(target) not in seen and name not in checks:
            seen.add(id(target))
            checks[name] = check

    selector = getattr(container, "message_bus", None)
    for provider in getattr(selector, "providers", {}).values():
        bus = _opened(provider)
        if bus is not None:
            add("event:default", bus, bus.health_check)
    named = _opened(getattr(container, "message_buses", None))
    if named is not None:
        for name, bus in named.opened().items():
            add(f"event:{name}", bus, bus.health_check)
    for provider in getattr(getattr(container, "event_store", None), "providers", {}).values():
        store = _opened(provider)
        if store is not None and callable(getattr(store, "health_check", None)):
            add("event_store", store, store.health_check)
    if getattr(container, runtime.REGISTRY_PROVIDER, None) is not None:
        for item in runtime.registry_of(container).items():
            if item.initialized:
                target = getattr(item, "bus", None) if item.kind == "EventBusManager" else item
                add(f"{_PREFIXES.get(item.kind, item.kind)}:{item.name}", target, item.health)
    return checks


def readiness_checks(container: containers.Container) -> dict[str, HealthCheck]:
    """What `discover` finds plus every store the runtime opened, each probed with a cheap read
    where its adapter has no `health_check()`: the command transport (`command`), the event
    store (`last_position`), the inbox (`is_processed` of a probe id) and the checkpoint store
    (`load` of a probe name). This is what `bento run`'s `/readyz` reports, component by
    component: a service is ready only when everything it reads and writes answers."""
    checks = discover(container)
    # Building the link opens nothing (the transport opens on first use).
    link_provider = getattr(container, "command_link", None)
    link = link_provider() if link_provider is not None else None
    bus = getattr(link, "opened_transport", None)
    if bus is not None:
        checks.setdefault("command", bus.health_check)
    probes: dict[str, Callable[[Any], HealthCheck]] = {
        "event_store": lambda store: store.last_position,
        "inbox": lambda inbox: lambda: inbox.is_processed("bento.readyz", "probe"),
        "checkpoint_store": lambda store: lambda: store.load("bento.readyz"),
    }
    for name, probe in probes.items():
        if name in checks:
            continue
        for target in _opened_branches(getattr(container, name, None)):
            health = getattr(target, "health_check", None)
            checks[name] = health if callable(health) else _as_check(probe(target))
    return checks


def _opened_branches(provider: Any) -> list[Any]:
    """The opened value of a Resource, or of each opened branch of a Selector of Resources
    (of the provider that overrides it, when a service replaced it; an Object counts as opened)."""
    overriding = getattr(provider, "last_overriding", None)
    if overriding is not None:
        return _opened_branches(overriding)
    if isinstance(provider, providers.Object):
        return [provider()]
    if isinstance(provider, providers.Selector):
        return [v for p in provider.providers.values() if (v := _opened(p)) is not None]
    value = _opened(provider)
    return [] if value is None else [value]


def _as_check(read: Callable[[], Awaitable[Any]]) -> HealthCheck:
    """A check that is healthy when `read` answers (whatever it returns)."""

    async def check() -> bool:
        await read()
        return True

    return check


async def _run(name: str, check: HealthCheck, timeout: float, required: bool) -> ComponentHealth:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            outcome = await check()
    except TimeoutError:
        elapsed = (time.perf_counter() - started) * 1000
        return ComponentHealth(name, False, elapsed, f"no answer in {timeout}s", required)
    except Exception as exc:  # a health report describes failures, it does not raise them
        elapsed = (time.perf_counter() - started) * 1000
        return ComponentHealth(name, False, elapsed, mask_credentials(f"{type(exc).__name__}: {exc}"), required)
    elapsed = (time.perf_counter() - started) * 1000
    if isinstance(outcome, HealthStatus):
        return ComponentHealth(name, outcome.healthy, outcome.latency_ms or elapsed, outcome.detail, required)
    return ComponentHealth(name, bool(outcome), elapsed, "", required)


async def collect_health(
    container: containers.Container,
    *,
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> HealthReport:
    """Check every opened component concurrently; see the module docstring."""
    found = {**discover(container), **(checks or {})}
    not_required = set(optional)
    results = await asyncio.gather(
        *(_run(name, check, timeout, name not in not_required) for name, check in sorted(found.items()))
    )
    return HealthReport(list(results))
