"""A group member the takeover test kills with SIGKILL in the middle of its batch.

Usage: python _victim.py URL TOPIC GROUP DONE_FILE. It appends each handled message id to
DONE_FILE (flushed before the handler returns, so before any commit) and prints "ready"
once subscribed."""

from __future__ import annotations

import asyncio
import sys

from kafka_support import kafka_settings

from bento.adapters.kafka import KafkaMessageBus
from bento.domain.events import DomainEvent
from bento.testing import events  # noqa: F401 - registers the contract event types


async def main(url: str, topic: str, group: str, done_file: str) -> None:
    with open(done_file, "a", buffering=1) as done:  # noqa: ASYNC230 - a line per message, flushed
        async with KafkaMessageBus(kafka_settings(url, max_concurrency=4)) as bus:

            async def slow(event: DomainEvent) -> None:
                await asyncio.sleep(0.02)
                done.write(event.message_id + "\n")

            await bus.subscribe(topic, slow, group=group)
            print("ready", flush=True)
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
