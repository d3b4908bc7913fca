"""Health of everything a container has opened: what `/api/health` reports.

`collect_health(container)` finds, without opening anything new:
* what `bento.infrastructure.health.opened_checks` finds: the default message bus and every
  named one opened, the event, checkpoint, snapshot and inbox stores opened, and the
  health-check topic's checkers when `health_checks` runs,
* every named instance initialized (RedisClient, RabbitMQClient, ChannelManager,
  MQManager, EventBusManager),
* extra checks the application adds (`checks={"search": probe}`, an async callable returning
  a HealthStatus or a bool).
Each check runs concurrently under a timeout and reports its status, latency and detail. The
report is healthy when every *required* component is; `optional` names the ones that are not.
The same object seen twice (a manager wrapping the container's own bus) is checked once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dependency_injector import containers

from bento.infrastructure.health import ComponentHealth, HealthCheck, HealthReport, collect_opened, run_checks
from bento.managers import runtime

__all__ = ["ComponentHealth", "HealthCheck", "HealthReport", "collect_health", "discover"]
_PREFIXES = {
    "RedisClient": "redis",
    "RabbitMQClient": "rabbitmq",
    "ChannelManager": "channel",
    "MQManager": "mq",
    "EventBusManager": "event",
}


def discover(container: containers.Container) -> dict[str, HealthCheck]:
    """Name → check of every component the container has opened (see the module docstring)."""
    found = collect_opened(container)
    if getattr(container, runtime.REGISTRY_PROVIDER, None) is not None:
        for item in runtime.registry_of(container).items():
            if item.initialized:
                target = getattr(item, "bus", None) if item.kind == "EventBusManager" else item
                found.add(f"{_PREFIXES.get(item.kind, item.kind)}:{item.name}", target, item.health)
    return found.checks


async def collect_health(
    container: containers.Container,
    *,
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> HealthReport:
    """Check every opened component concurrently; see the module docstring."""
    return await run_checks({**discover(container), **(checks or {})}, timeout=timeout, optional=optional)


def readiness_checks(container: containers.Container) -> dict[str, HealthCheck]:
    """What `bento run`'s `/readyz` checks: everything `discover` finds (the opened buses, the
    command transport, every opened store probed with a read through its port)."""
    return discover(container)
