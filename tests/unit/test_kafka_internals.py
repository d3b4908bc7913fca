"""The Kafka adapter's pure parts: the commit point, the per-key lanes, and the settings."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from bento.adapters.kafka import KafkaSettings
from bento.application.credentials import MASK

pytest.importorskip("aiokafka")

from bento.adapters.kafka._lanes import Job, Lanes
from bento.adapters.kafka._offsets import PartitionOffsets


def test_the_commit_point_never_passes_an_unsettled_offset() -> None:
    offsets = PartitionOffsets()
    for offset in range(10, 16):
        offsets.received(offset)
    for offset in (11, 12, 14):
        offsets.settled(offset)
    assert offsets.to_commit() is None  # 10 is still open
    offsets.settled(10)
    assert offsets.to_commit() == 13  # 10-12 settled; 13 open
    offsets.committed(13)
    assert offsets.to_commit() is None
    offsets.settled(13)
    assert offsets.to_commit() == 15
    assert len(offsets) == 1  # 15
    offsets.settled(15)
    assert offsets.to_commit() == 16 and len(offsets) == 0


async def _settle(condition: Callable[[], bool], timeout: float) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not settled within {timeout} s")


def _job(partition: int, offset: int, key: bytes | None, offsets: PartitionOffsets) -> Job:
    offsets.received(offset)
    return Job(partition, offset, key, b"", (), offsets)


async def test_lanes_run_keys_concurrently_but_one_key_in_order() -> None:
    running: Counter[bytes | None] = Counter()
    most: Counter[bytes | None] = Counter()
    order: dict[bytes | None, list[int]] = {}
    at_once = 0
    peak = 0

    async def run(job: Job) -> float | None:
        nonlocal at_once, peak
        running[job.key] += 1
        at_once += 1
        peak = max(peak, at_once)
        most[job.key] = max(most[job.key], running[job.key])
        await asyncio.sleep(0.002)
        order.setdefault(job.key, []).append(job.offset)
        running[job.key] -= 1
        at_once -= 1
        job.offsets.settled(job.offset)
        return None

    lanes = Lanes(4, run, name="test")
    offsets = PartitionOffsets()
    for offset in range(80):
        lanes.submit(_job(0, offset, f"k{offset % 8}".encode(), offsets))
    await _settle(lambda: offsets.to_commit() == 80, 5)
    await lanes.stop()
    assert peak == 4  # bounded by the workers, and really concurrent
    assert set(most.values()) == {1}
    for key, seen in order.items():
        assert seen == sorted(seen), key


async def test_a_retrying_message_holds_its_key_but_no_worker() -> None:
    """One worker: the failing key waits on a timer, the other key's messages still run."""
    attempts: Counter[int] = Counter()
    done: list[int] = []

    async def run(job: Job) -> float | None:
        attempts[job.offset] += 1
        if job.offset == 0 and attempts[0] < 3:
            return 0.2
        done.append(job.offset)
        return None

    lanes = Lanes(1, run, name="test")
    offsets = PartitionOffsets()
    lanes.submit(_job(0, 0, b"poison", offsets))
    lanes.submit(_job(0, 1, b"poison", offsets))
    for offset in range(2, 12):
        lanes.submit(_job(0, offset, b"good", offsets))
    await asyncio.sleep(0.1)
    assert done == list(range(2, 12))  # the good key passed while offset 0 waited
    await _settle(lambda: len(done) == 12, 3)
    assert done[-2:] == [0, 1] and attempts[0] == 3
    await lanes.stop()


async def test_dropped_partitions_lose_their_waiting_messages_only() -> None:
    started: list[tuple[int, int]] = []
    release = asyncio.Event()

    async def run(job: Job) -> float | None:
        started.append((job.partition, job.offset))
        await release.wait()
        return None

    lanes = Lanes(1, run, name="test")
    offsets = PartitionOffsets()
    lanes.submit(_job(0, 0, b"a", offsets))
    lanes.submit(_job(0, 1, b"a", offsets))
    lanes.submit(_job(1, 0, b"a", PartitionOffsets()))
    await asyncio.sleep(0.05)
    lanes.drop([0])
    assert not await lanes.wait_idle([0], 0.05)  # offset 0 still runs
    release.set()
    assert await lanes.wait_idle([0], 1.0)
    await asyncio.sleep(0.05)
    assert started == [(0, 0), (1, 0)]
    await lanes.stop()


def test_credentials_in_the_url_become_sasl_and_are_never_shown() -> None:
    settings = KafkaSettings(url="kafka+ssl://alice:p%40ss@k1:9093,k2:9093")
    assert settings.bootstrap_servers() == ["k1:9093", "k2:9093"]
    assert settings.credentials() == ("alice", "p@ss")
    assert settings.protocol() == "SASL_SSL"
    assert "alice" not in settings.address and "p%40ss" not in settings.address and MASK in settings.address
    assert "p%40ss" not in repr(settings)


def test_plain_urls_and_explicit_protocols() -> None:
    assert KafkaSettings(url="kafka://k1:9092").protocol() == "PLAINTEXT"
    assert KafkaSettings(url="k1:9092,k2:9092").bootstrap_servers() == ["k1:9092", "k2:9092"]
    assert KafkaSettings(url="kafka+ssl://k1:9093").protocol() == "SSL"
    explicit = KafkaSettings(url="kafka://k1:9092", sasl_username="bob", sasl_password="pw")
    assert explicit.protocol() == "SASL_PLAINTEXT" and explicit.credentials() == ("bob", "pw")
    with pytest.raises(ValueError, match="kafka://"):
        KafkaSettings(url="amqp://k1:5672")
    with pytest.raises(ValueError, match="topic_prefix"):
        KafkaSettings(topic_prefix="a/b")
