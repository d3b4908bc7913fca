"""The README quick start, unchanged, on each broker: EVENT__BACKEND alone sends its event
through the broker, and its subscriber consumes it from there (the broker keeps the proof)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from servers import require_tcp

ROOT = Path(__file__).resolve().parents[2]


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None
    return code.group(1)


def _run(tmp_path: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT", "COMMAND"))}
    full.update(PYTHONPATH=str(ROOT / "src"), **env)
    result = subprocess.run(
        [sys.executable, "-c", _quick_start()], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "o-1" and lines[0].startswith("placed o-1 caused by "), result.stdout
    return result.stdout


def test_on_redis_the_event_crosses_the_stream(tmp_path: Path) -> None:
    import redis

    require_tcp("Redis", "127.0.0.1", 6379, "redis-server --port 6379")
    prefix = f"bento-readme:{uuid.uuid4().hex[:8]}:"
    _run(tmp_path, EVENT__BACKEND="redis", EVENT__URL="redis://127.0.0.1:6379/0", EVENT__KEY_PREFIX=prefix)
    client = redis.Redis()
    try:
        streams = [key.decode() for key in client.scan_iter(match=f"{prefix}*order.placed*")]
        assert streams, "nothing was published to Redis"
        groups = client.xinfo_groups(streams[0])
        assert [g["name"].decode() for g in groups] == ["bento-service.Notify"]
        assert groups[0]["pending"] == 0 and client.xlen(streams[0]) == 1  # consumed and acknowledged
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


def test_on_nats_the_event_is_in_the_stream(tmp_path: Path) -> None:
    import nats

    require_tcp("NATS", "127.0.0.1", 4222, "nats-server -js")
    suffix = uuid.uuid4().hex[:8]
    stream = f"README_{suffix}"
    _run(tmp_path, EVENT__BACKEND="nats", EVENT__STREAM_NAME=stream, EVENT__SUBJECT_PREFIX=f"readme{suffix}")

    async def count() -> int:
        client = await nats.connect("nats://127.0.0.1:4222")
        try:
            js = client.jetstream()
            info = await js.stream_info(stream)
            await js.delete_stream(stream)
            await js.delete_stream(f"{stream}_DLQ")
            return int(info.state.messages)
        finally:
            await client.close()

    assert asyncio.run(count()) == 1


def test_on_rabbitmq_the_subscriber_has_its_own_queue(tmp_path: Path) -> None:
    import aio_pika

    require_tcp("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")
    exchange = f"readme.{uuid.uuid4().hex[:8]}"
    _run(tmp_path, EVENT__BACKEND="rabbitmq", EVENT__EXCHANGE_NAME=exchange)

    async def queues() -> list[str]:
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        found = []
        try:
            channel = await connection.channel()
            for name in (f"{exchange}/bento-service.Notify/order.placed",):
                try:
                    queue = await channel.get_queue(name, ensure=True)
                except aio_pika.exceptions.ChannelClosed:
                    channel = await connection.channel()
                    continue
                found.append(name)
                await queue.delete(if_unused=False, if_empty=False)
        finally:
            await connection.close()
        return found

    assert asyncio.run(queues()), "the subscriber's queue was not created on RabbitMQ"


@pytest.mark.parametrize("backend", ["inprocess"])
def test_in_process_by_default(tmp_path: Path, backend: str) -> None:
    _run(tmp_path, EVENT__BACKEND=backend)
