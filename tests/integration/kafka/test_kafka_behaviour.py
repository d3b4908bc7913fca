"""What the Kafka adapter promises beyond the contract: per-key order across a group, per-key
parallelism, commits that never pass a failed record, takeover after a member dies, and a
poison message that never blocks its partition."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_support import kafka_settings, until

from bento.adapters.kafka import KafkaMessageBus
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent, make_event

HERE = Path(__file__).parent


async def test_per_key_order_holds_across_two_group_members(kafka_url: str, unique_topic: str) -> None:
    """20 keys x 200 messages over 4 partitions, two members of one group: both work, and
    every key's messages are handled in publish order."""
    seen: dict[str, list[int]] = defaultdict(list)
    by_member: Counter[str] = Counter()

    def member(name: str):  # type: ignore[no-untyped-def]
        async def handle(event: DomainEvent) -> None:
            assert isinstance(event, ContractEvent)
            await asyncio.sleep(0)
            seen[event.key].append(event.seq)
            by_member[name] += 1

        return handle

    sent = [make_event(n, key=f"key-{n % 20}") for n in range(4000)]
    settings = kafka_settings(kafka_url, partitions=4)
    async with KafkaMessageBus(settings) as one, KafkaMessageBus(settings) as two:
        await one.subscribe(unique_topic, member("one"), group="order")
        await two.subscribe(unique_topic, member("two"), group="order")
        for start in range(0, len(sent), 500):
            await one.publish_batch(unique_topic, sent[start : start + 500])
        await until(lambda: sum(len(set(v)) for v in seen.values()) >= len(sent), timeout=60)
    assert by_member["one"] > 0 and by_member["two"] > 0, by_member
    for key, seqs in seen.items():
        expected = [m.seq for m in sent if m.key == key]
        assert list(dict.fromkeys(seqs)) == expected, f"order broken for {key}"


async def _drain_with(kafka_url: str, topic: str, concurrency: int, sent: list[ContractEvent]) -> tuple[float, int]:
    """Seconds one member needs to handle `sent` with a 5 ms handler, and the most handlers
    of one key that ever ran at once."""
    seen: dict[str, list[int]] = defaultdict(list)
    running: Counter[str] = Counter()
    most_at_once = 0

    async def slow(event: DomainEvent) -> None:
        nonlocal most_at_once
        assert isinstance(event, ContractEvent)
        running[event.key] += 1
        most_at_once = max(most_at_once, running[event.key])
        await asyncio.sleep(0.005)
        seen[event.key].append(event.seq)
        running[event.key] -= 1

    settings = kafka_settings(kafka_url, partitions=4, max_concurrency=concurrency)
    async with KafkaMessageBus(settings) as bus:
        await bus.publish_batch(topic, sent)
        started = time.monotonic()
        await bus.subscribe(topic, slow, group=f"parallel-{concurrency}")
        await until(lambda: sum(len(set(v)) for v in seen.values()) >= len(sent), timeout=120)
        elapsed = time.monotonic() - started
    for key, seqs in seen.items():
        assert list(dict.fromkeys(seqs)) == [m.seq for m in sent if m.key == key], f"order broken for {key}"
    return elapsed, most_at_once


async def test_per_key_parallelism_raises_throughput_and_keeps_order(kafka_url: str, unique_topic: str) -> None:
    sent = [make_event(n, key=f"key-{n % 20}") for n in range(600)]
    serial, serial_most = await _drain_with(kafka_url, unique_topic, 1, sent)
    parallel, parallel_most = await _drain_with(kafka_url, unique_topic, 16, sent)
    # Both include the group join (about 3 s on tansu); the handling itself is 600 x 5 ms
    # one at a time, against up to 16 keys at once.
    assert serial - parallel > 2.0, (serial, parallel)
    assert serial_most == parallel_most == 1  # one key never ran twice at once


async def test_poison_is_dead_lettered_while_its_partition_flows_and_commits_wait(
    kafka_url: str, unique_topic: str
) -> None:
    """1,000 good messages pass while a poison message retries; the committed offset of its
    partition stays at the poison until it is dead-lettered, then moves past it."""
    poison = make_event(-1, key="key-poison", blob="poison")
    handled_at: dict[str, float] = {}
    attempts: Counter[str] = Counter()

    async def handler(event: DomainEvent) -> None:
        attempts[event.message_id] += 1
        if event.message_id == poison.message_id:
            raise ValueError("cannot handle the poison message")
        handled_at[event.message_id] = time.monotonic()

    good = [make_event(n, key=f"key-{n % 50}") for n in range(1000)]
    settings = kafka_settings(kafka_url, partitions=4, max_attempts=3, retry_delays=[1.5, 1.5])
    group = "poison"
    async with KafkaMessageBus(settings) as bus:
        await bus.subscribe(unique_topic, handler, group=group)
        await bus.publish(unique_topic, poison)
        await bus.publish_batch(unique_topic, good)
        await until(lambda: len(handled_at) >= 1000, timeout=30)
        assert attempts[poison.message_id] < 3, "the good messages waited for the poison"
        await asyncio.sleep(0.3)  # a commit interval or more
        while_retrying = await _committed(kafka_url, unique_topic, group)
        letters: list = []

        async def dead_lettered() -> None:
            while not letters:
                letters.extend(await bus.dead_letters(unique_topic, group=group))
                await asyncio.sleep(0.1)

        await asyncio.wait_for(dead_lettered(), 20)
        await asyncio.sleep(0.3)
        after = await _committed(kafka_url, unique_topic, group)
    letter = letters[0]
    assert letter.message_id == poison.message_id and letter.attempts == 3
    assert letter.error_type == "ValueError"
    partition, offset = (
        int(letter.headers["x-bento-original-partition"]),
        int(letter.headers["x-bento-original-offset"]),
    )
    assert while_retrying.get(partition, 0) <= offset, "committed past a message still being retried"
    assert after[partition] > offset
    assert attempts[poison.message_id] == 3


async def _committed(kafka_url: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed offsets, read as a client that does not join it."""
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_url.split("://", 1)[1], group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        found = {p: await reader.committed(TopicPartition(topic, p)) for p in range(4)}
    finally:
        await reader.stop()
    return {p: offset for p, offset in found.items() if offset is not None}


async def test_a_killed_member_s_partitions_go_to_the_survivor_and_nothing_is_lost(
    kafka_url: str, unique_topic: str, tmp_path: Path
) -> None:
    done_file = tmp_path / "victim.txt"
    done_file.touch()
    group = "takeover"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_victim.py"),
        kafka_url,
        unique_topic,
        group,
        str(done_file),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert victim.stdout is not None
        line = await asyncio.wait_for(victim.stdout.readline(), 30)
        assert line.strip() == b"ready"
        survivor: Counter[str] = Counter()

        async def handle(event: DomainEvent) -> None:
            await asyncio.sleep(0.02)
            survivor[event.message_id] += 1

        sent = [make_event(n, key=f"key-{n % 40}") for n in range(800)]
        settings = kafka_settings(kafka_url, partitions=4, max_concurrency=4)
        async with KafkaMessageBus(settings) as bus:
            await bus.subscribe(unique_topic, handle, group=group)
            await bus.publish_batch(unique_topic, sent)

            def victim_handled() -> list[str]:
                return done_file.read_text().split()

            await until(lambda: len(victim_handled()) >= 100 and len(survivor) > 0, timeout=30)
            victim.send_signal(signal.SIGKILL)
            await asyncio.wait_for(victim.wait(), 10)
            killed_after = len(victim_handled())
            expected = {m.message_id for m in sent}
            await until(lambda: set(victim_handled()) | set(survivor) >= expected, timeout=60)
        handled = Counter(victim_handled()) + survivor
        duplicates = sum(count - 1 for count in handled.values())
        assert killed_after < len(sent), "the victim finished before it was killed"
        assert set(handled) == expected
        print(f"victim handled {killed_after}, survivor {sum(survivor.values())}, duplicates {duplicates}")
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()
