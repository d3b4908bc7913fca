"""Helpers of the RabbitMQ integration tests (a uniquely named module: pytest imports test
folders without packages, where a second `conftest` would shadow this one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from bento.adapters.rabbitmq import RabbitMQSettings
from bento.application.ports.message_bus import DeadLetter, MessageBus


class SettingsFactory(Protocol):
    def __call__(self, **overrides: object) -> RabbitMQSettings: ...


def make_settings(url: str, name: str, **overrides: object) -> RabbitMQSettings:
    values: dict[str, object] = {
        "url": url,
        "connection_name": name,
        "max_attempts": 3,
        "retry_delays": [0.05, 0.1],
        "queue_expires": 120.0,
        "reconnect_interval": 0.5,
        "drain_timeout": 5.0,
    }
    values.update(overrides)
    return RabbitMQSettings.model_validate(values)


async def _run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}): {err.decode()[:500]}")
    return out.decode()


class ConnectionDropper:
    """Closes, on the broker side, only the connections whose client name starts with `name`.

    `rabbitmqctl close_connection` is what a broker restart or a network cut looks like to the
    client, without disturbing other users of the shared broker (unlike close_all_connections)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def drop(self) -> int:
        listing = await _run("rabbitmqctl", "-q", "list_connections", "pid", "client_properties")
        pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f'{{"connection_name","{self.name}' in line]
        for pid in pids:
            await _run("rabbitmqctl", "-q", "close_connection", pid, "bento fault test")
        return len(pids)


async def until(predicate: Callable[[], bool], within: float) -> None:
    """Poll a condition that no event signals (broker-side state, counters)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the condition itself
            await asyncio.sleep(0.05)


async def dead_letters_at_least(bus: MessageBus, topic: str, group: str | None, count: int) -> list[DeadLetter]:
    async with asyncio.timeout(20):
        while len(letters := await bus.dead_letters(topic, group=group)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return letters
