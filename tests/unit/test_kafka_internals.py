"""The Kafka adapter's pure parts: the commit point, the per-key lanes, and the settings."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from bento.adapters.kafka import KafkaSettings
from bento.application.credentials import MASK

pytest.importorskip("aiokafka")

from aiokafka.structs import ConsumerRecord

from bento.adapters.kafka._lanes import Lane, Lanes, Record
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


def _record(partition: int, offset: int, key: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, 0, 0, key, b"", None, 0, 0, ())


def _submit(lanes: Lanes, partition: int, offset: int, key: bytes | None, offsets: PartitionOffsets) -> None:
    lanes.submit(partition, offsets, [_record(partition, offset, key)])


async def test_lanes_run_keys_concurrently_but_one_key_in_order() -> None:
    running: Counter[bytes | None] = Counter()
    most: Counter[bytes | None] = Counter()
    order: dict[bytes | None, list[int]] = {}
    at_once = 0
    peak = 0

    async def run(lane: Lane, record: Record) -> float | None:
        nonlocal at_once, peak
        running[record.key] += 1
        at_once += 1
        peak = max(peak, at_once)
        most[record.key] = max(most[record.key], running[record.key])
        await asyncio.sleep(0.002)
        order.setdefault(record.key, []).append(record.offset)
        running[record.key] -= 1
        at_once -= 1
        lane.offsets.settled(record.offset)
        return None

    lanes = Lanes(4, run, name="test")
    offsets = PartitionOffsets()
    # Two fetched batches: a batch is handed over whole, and a later one joins the same lanes.
    lanes.submit(0, offsets, [_record(0, offset, f"k{offset % 8}".encode()) for offset in range(50)])
    lanes.submit(0, offsets, [_record(0, offset, f"k{offset % 8}".encode()) for offset in range(50, 80)])
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

    async def run(lane: Lane, record: Record) -> float | None:
        attempts[record.offset] += 1
        assert lane.attempt == attempts[record.offset]  # the lane counts its head's attempts
        if record.offset == 0 and attempts[0] < 3:
            lane.attempt += 1
            return 0.2
        done.append(record.offset)
        return None

    lanes = Lanes(1, run, name="test")
    offsets = PartitionOffsets()
    _submit(lanes, 0, 0, b"poison", offsets)
    _submit(lanes, 0, 1, b"poison", offsets)
    for offset in range(2, 12):
        _submit(lanes, 0, offset, b"good", offsets)
    await asyncio.sleep(0.1)
    assert done == list(range(2, 12))  # the good key passed while offset 0 waited
    await _settle(lambda: len(done) == 12, 3)
    assert done[-2:] == [0, 1] and attempts[0] == 3
    await lanes.stop()


async def test_dropped_partitions_lose_their_waiting_messages_only() -> None:
    started: list[tuple[int, int]] = []
    release = asyncio.Event()

    async def run(lane: Lane, record: Record) -> float | None:
        started.append((record.partition, record.offset))
        await release.wait()
        return None

    lanes = Lanes(1, run, name="test")
    offsets = PartitionOffsets()
    _submit(lanes, 0, 0, b"a", offsets)
    _submit(lanes, 0, 1, b"a", offsets)
    _submit(lanes, 1, 0, b"a", PartitionOffsets())
    await asyncio.sleep(0.05)
    lanes.drop([0])
    assert not await lanes.wait_idle([0], 0.05)  # offset 0 still runs
    release.set()
    assert await lanes.wait_idle([0], 1.0)
    await asyncio.sleep(0.05)
    assert started == [(0, 0), (1, 0)]
    await lanes.stop()


async def test_workers_give_the_loop_a_turn_while_handling_a_backlog() -> None:
    """Handlers that never suspend must not hold the loop for a whole fetched batch: the next
    fetch response is read, and the next fetch sent, while the workers handle this one."""
    loop = asyncio.get_running_loop()
    handled = 0
    turns_of_the_loop = 0

    async def run(lane: Lane, record: Record) -> float | None:
        nonlocal handled
        busy_until = time.perf_counter() + 0.0001  # 100 µs of work, no await
        while time.perf_counter() < busy_until:
            pass
        handled += 1
        return None

    def tick() -> None:
        nonlocal turns_of_the_loop
        turns_of_the_loop += 1
        if handled < 1000:
            loop.call_soon(tick)

    lanes = Lanes(4, run, name="test")
    offsets = PartitionOffsets()
    lanes.submit(0, offsets, [_record(0, offset, f"k{offset % 10}".encode()) for offset in range(1000)])
    loop.call_soon(tick)
    await _settle(lambda: handled == 1000, 10)
    await lanes.stop()
    # 0.1 s of handling in slices of 5 ms: about twenty loop iterations, not one or two.
    assert turns_of_the_loop >= 10


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
