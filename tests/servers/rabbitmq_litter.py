"""What a test run leaves on the shared RabbitMQ, and removing it at the end of the run.

Tests name their exchanges and queues uniquely but many do not delete them (an adapter's
retry and dead-letter queues, a reply topic, a docs block's queues), and the machine's broker
is shared. The run lists the broker's queues and exchanges when it starts and deletes, when it
ends, the ones that appeared in between and have no consumer (so a queue another run on this
machine is consuming from is left alone). Listing needs `rabbitmqctl` (the broker's own CLI,
on the machine that runs it); without it nothing is deleted and nothing fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class BrokerNames:
    """The queues (with their consumer counts) and exchanges a broker has at one moment."""

    queues: dict[str, int]
    exchanges: frozenset[str]


def _ctl(*args: str) -> list[str] | None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        done = subprocess.run(
            [ctl, *args, "-q", "--no-table-headers"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.splitlines() if done.returncode == 0 else None


def snapshot() -> BrokerNames | None:
    """The broker's queues and exchanges now, or None when `rabbitmqctl` cannot tell."""
    queues = _ctl("list_queues", "name", "consumers")
    exchanges = _ctl("list_exchanges", "name")
    if queues is None or exchanges is None:
        return None
    counted: dict[str, int] = {}
    for line in queues:
        name, _, consumers = line.rpartition("\t")
        if name:
            counted[name] = int(consumers) if consumers.isdigit() else 1
    return BrokerNames(counted, frozenset(e for e in exchanges if e and not e.startswith("amq.")))


async def _delete(queues: list[str], exchanges: list[str], url: str) -> int:
    import aio_pika

    deleted = 0
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            try:
                await channel.queue_delete(name, if_unused=True)
                deleted += 1
            except Exception:  # in use or gone: a broker error closes the channel, take a new one
                channel = await connection.channel()
        for name in exchanges:
            try:
                await channel.exchange_delete(name, if_unused=False)
                deleted += 1
            except Exception:
                channel = await connection.channel()
    return deleted


def remove_litter(before: BrokerNames) -> int:
    """Delete what appeared since `before` and nobody consumes from; the number deleted."""
    after = snapshot()
    if after is None:
        return 0
    queues = [q for q, consumers in after.queues.items() if q not in before.queues and consumers == 0]
    exchanges = sorted(after.exchanges - before.exchanges)
    if not queues and not exchanges:
        return 0
    url = os.environ.get("BENTO_TEST_RABBITMQ_URL", DEFAULT_URL)
    try:
        return asyncio.run(_delete(queues, exchanges, url))
    except Exception:
        return 0
