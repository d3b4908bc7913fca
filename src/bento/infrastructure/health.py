"""Health of every component of a container, one function for every caller.

Two ways to ask, for two callers:

* `collect_health(container)` checks what the container has *opened* and opens nothing
  new: the default message bus and every named one, the event store, checkpoint, snapshot
  and inbox stores, and the health-check topic's publisher and subscriber checker when
  `health_checks` runs. This is what a running service reports (`/api/health`, `/readyz`
  of `bento run --http`, FastAPI's `/readyz`).
* `probe_health(container)` opens every *configured* component and checks each with a real
  round trip through its port, then closes them. This is `bento health`, run beside a
  service. ClickHouse stores are not opened (opening creates tables, and an embedded folder
  can be held by one process only): their table is looked up instead, creating nothing.

Each check runs concurrently under a timeout and reports up or down, its latency and a
detail. A store's check is a read through its port (`last_position()`, `load()`,
`is_processed()`): a store answers or it does not. The report is healthy when every
*required* component is; `optional` names those that are not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dependency_injector import containers, providers

from bento.application.credentials import mask_credentials
from bento.application.health_check import HealthCheckPublisher, HealthCheckSubscriber
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.message_bus import MessageBus

HealthCheck = Callable[[], Awaitable[HealthStatus | bool]]
#: The key the store probes read (nothing is ever written under it).
_PROBE = "bento.health"


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
                c.name: {
                    **{k: v for k, v in asdict(c).items() if k != "name"},
                    "latency_ms": round(c.latency_ms, 3),
                    "status": c.status,
                }
                for c in self.components
            },
        }


# -- the health-check topic (seed 003) as a container resource ---------------------------
class HealthChecks:
    """The health-check publisher and subscriber checker one process runs (either may be off)."""

    def __init__(self, publisher: HealthCheckPublisher | None, subscriber: HealthCheckSubscriber | None) -> None:
        self.publisher, self.subscriber = publisher, subscriber

    def checks(self) -> dict[str, HealthCheck]:
        found: dict[str, HealthCheck] = {}
        if self.publisher is not None:
            found["health_check:publisher"] = self.publisher.status
        if self.subscriber is not None:
            found["health_check:subscriber"] = self.subscriber.status
        return found


async def open_health_checks(bus: MessageBus, settings: Any) -> AsyncIterator[HealthChecks]:
    """The builder of the container's `health_checks` Resource: starts what `settings`
    (a HealthCheckSettings) asks for on `bus`, stops it on shutdown. Disabled, it runs nothing."""
    publisher = subscriber = None
    if settings.enabled and settings.subscribe:
        subscriber = HealthCheckSubscriber(bus, topic=settings.topic, max_age=settings.max_age)
        await subscriber.start()
    if settings.enabled and settings.publish:
        publisher = HealthCheckPublisher(bus, topic=settings.topic, interval=settings.interval)
        await publisher.start()
    try:
        yield HealthChecks(publisher, subscriber)
    finally:
        if publisher is not None:
            await publisher.stop()
        if subscriber is not None:
            await subscriber.stop()


# -- what a container has opened ---------------------------------------------------------
def _opened(provider: Any) -> Any | None:
    """The value of an initialized Resource (None when it was never opened)."""
    if isinstance(provider, providers.Resource) and provider.initialized:
        value = provider()
        if isinstance(value, asyncio.Future):
            return value.result() if value.done() and not value.cancelled() and not value.exception() else None
        return value
    return None


def _branches(container: containers.Container, name: str) -> list[Any]:
    """The opened values of the provider `name`: a Resource, or each opened branch of a Selector
    of Resources; of the provider that overrides it when a service replaced it (an Object
    counts as opened)."""
    return _opened_branches(getattr(container, name, None))


def _opened_branches(provider: Any) -> list[Any]:
    overriding = getattr(provider, "last_overriding", None)
    if overriding is not None:
        return _opened_branches(overriding)
    if isinstance(provider, providers.Object):
        value = provider()
        return [] if value is None else [value]
    if isinstance(provider, providers.Selector):
        return [v for p in provider.providers.values() if (v := _opened(p)) is not None]
    value = _opened(provider)
    return [] if value is None else [value]


def opened_buses(container: containers.Container) -> dict[str, MessageBus]:
    """`event:<instance>` → every message bus `container` has opened (the default one first),
    and `command` → the command transport once opened (`COMMAND__…` on a broker)."""
    found: dict[str, MessageBus] = {}
    for bus in _branches(container, "message_bus"):
        found.setdefault("event:default", bus)
    named = _opened(getattr(container, "message_buses", None))
    if named is not None:
        for name, bus in named.opened().items():
            if all(bus is not known for known in found.values()):
                found.setdefault(f"event:{name}", bus)
    link = getattr(container, "command_link", None)
    # Building the link opens nothing (the transport opens on first use).
    transport = getattr(link() if callable(link) else None, "opened_transport", None)
    if transport is not None and all(transport is not known for known in found.values()):
        found["command"] = transport
    return found


def store_check(kind: str, store: Any) -> HealthCheck:
    """A read through the port of a store that has no `health_check()` of its own."""
    if callable(getattr(store, "health_check", None)):
        check: HealthCheck = store.health_check
        return check

    async def probe() -> HealthStatus:
        started = time.perf_counter()
        if kind == "event_store":
            detail = f"last position {await store.last_position()}"
        elif kind == "inbox":
            await store.is_processed(_PROBE, _PROBE)
            detail = "answered"
        else:
            await store.load(_PROBE)
            detail = "answered"
        latency = (time.perf_counter() - started) * 1000
        return HealthStatus(True, kind, latency, f"{type(store).__name__}: {detail}")

    return probe


_STORES = ("event_store", "checkpoint_store", "snapshot_store", "inbox")


class UniqueChecks:
    """Checks by name, each component once: one reachable under two names (a bus that is also
    the command transport, say) is checked under the first."""

    def __init__(self) -> None:
        self.checks: dict[str, HealthCheck] = {}
        self._seen: set[int] = set()

    def add(self, name: str, target: Any, check: HealthCheck) -> None:
        if id(target) not in self._seen and name not in self.checks:
            self._seen.add(id(target))
            self.checks[name] = check


def collect_opened(container: containers.Container) -> UniqueChecks:
    """The checks of every component `container` has opened (see the module docstring), open
    for more to be added (`bento.managers.health` adds the named managers)."""
    found = UniqueChecks()
    for name, bus in opened_buses(container).items():
        found.add(name, bus, bus.health_check)
    for kind in _STORES:
        for store in _branches(container, kind):
            found.add(kind, store, store_check(kind, store))
    for health in _branches(container, "health_checks"):
        if isinstance(health, HealthChecks):
            for name, check in health.checks().items():
                found.add(name, check, check)
    return found


def opened_checks(container: containers.Container) -> dict[str, HealthCheck]:
    """Name → check of every component `container` has opened (see the module docstring)."""
    return collect_opened(container).checks


async def run_checks(
    checks: Mapping[str, HealthCheck], *, timeout: float = 5.0, optional: Iterable[str] = ()
) -> HealthReport:
    """Run every check concurrently, each under `timeout`; failures are reported, never raised."""
    not_required = set(optional)
    results = await asyncio.gather(
        *(_run(name, check, timeout, name not in not_required) for name, check in sorted(checks.items()))
    )
    return HealthReport(list(results))


async def collect_health(
    container: containers.Container,
    *,
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> HealthReport:
    """Check every opened component of `container`, plus `checks`; opens nothing."""
    return await run_checks({**opened_checks(container), **(checks or {})}, timeout=timeout, optional=optional)


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
        detail = mask_credentials(f"{type(exc).__name__}: {exc}")[:500]
        return ComponentHealth(name, False, elapsed, detail, required)
    elapsed = (time.perf_counter() - started) * 1000
    if isinstance(outcome, HealthStatus):
        return ComponentHealth(name, outcome.healthy, outcome.latency_ms or elapsed, outcome.detail, required)
    return ComponentHealth(name, bool(outcome), elapsed, "", required)


# -- every configured component, opened for the check (`bento health`) -------------------
async def probe_health(container: containers.Container, *, timeout: float = 5.0) -> HealthReport:
    """Open each configured component, check it, close what was opened; see the module docstring.
    A component that cannot even be opened is reported down with the reason."""
    settings = container.settings()
    checks: dict[str, HealthCheck] = {"event:default": _opening(container, "message_bus", "bus", timeout)}
    for name in sorted(settings.event):
        if name != "default":
            checks[f"event:{name}"] = _named_bus(container, name, timeout)
    if container.command_link() is not None:  # COMMAND__… names a broker
        checks["command"] = _command_transport(container, timeout)
    for kind in _STORES:
        section = getattr(settings, kind)
        if section.backend == "clickhouse":
            checks[kind] = _clickhouse_table(settings.clickhouse, getattr(section, "table", None), kind)
        else:
            checks[kind] = _opening(container, kind, kind, timeout)
    try:
        return await run_checks(checks, timeout=timeout * 2)
    finally:
        await _shutdown(container)


def _opening(container: containers.Container, provider: str, kind: str, timeout: float) -> HealthCheck:
    async def check() -> HealthStatus | bool:
        async with asyncio.timeout(timeout):
            value = getattr(container, provider)()
            target = await value if hasattr(value, "__await__") else value
        if kind == "bus":
            status: HealthStatus = await target.health_check()
            return status
        return await store_check(kind, target)()

    return check


def _named_bus(container: containers.Container, name: str, timeout: float) -> HealthCheck:
    async def check() -> HealthStatus:
        async with asyncio.timeout(timeout):
            buses = container.message_buses()
            buses = await buses if hasattr(buses, "__await__") else buses
            bus = await buses.get(name)
        status: HealthStatus = await bus.health_check()
        return status

    return check


def _command_transport(container: containers.Container, timeout: float) -> HealthCheck:
    async def check() -> HealthStatus:
        async with asyncio.timeout(timeout):
            bus = await container.command_link().transport()
        status: HealthStatus = await bus.health_check()
        return status

    return check


def _clickhouse_table(settings: Any, table: str | None, kind: str) -> HealthCheck:
    async def check() -> HealthStatus:
        from bento.adapters.clickhouse.engine import table_exists

        where = settings.path if settings.mode == "embedded" else f"{settings.host}:{settings.port}"
        started = time.perf_counter()
        exists = await table_exists(settings, table or "events")
        latency = (time.perf_counter() - started) * 1000
        if table is None:  # only the server's answer matters here
            return HealthStatus(True, kind, latency, f"clickhouse {settings.mode} at {where} answered")
        detail = f"clickhouse {settings.mode} at {where}, table {settings.database}.{table}"
        return HealthStatus(exists, kind, latency, detail if exists else f"{detail} does not exist")

    return check


async def _shutdown(container: containers.Container) -> None:
    result = container.shutdown_resources()
    if result is not None:
        await result


# -- readiness: health plus the runtime's backlog ----------------------------------------
async def readiness(
    container: containers.Container,
    *,
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Whether the service should get traffic, and why: every required opened component is
    up (`collect_health`) and, when the container's runtime runs, no projection or outbox
    relay is behind (`Runtime.lag()`, events still to process). The body is the health report
    with `ready` and, with a runtime, `lag` added."""
    report = await collect_health(container, timeout=timeout, optional=optional, checks=checks)
    body: dict[str, Any] = {"ready": report.healthy, **report.as_dict()}
    running = next(iter(_branches(container, "runtime")), None)
    lag = getattr(running, "lag", None)
    if callable(lag):
        try:
            async with asyncio.timeout(timeout):
                behind: dict[str, int] = await lag()
        except Exception as exc:  # reported, as every other failure of a probe
            body["ready"], body["reason"] = False, mask_credentials(f"{type(exc).__name__}: {exc}")[:500]
        else:
            body["lag"] = behind
            body["ready"] = body["ready"] and not any(behind.values())
    return bool(body["ready"]), body
