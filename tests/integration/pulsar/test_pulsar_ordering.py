"""Key_Shared per-key order with two consumers, and isolation of slow subscriptions."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import urllib.request
from collections import Counter, defaultdict
from urllib.parse import urlparse

import pytest

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event

KEYS, PER_KEY = 20, 200


def _settings(url: str, **changes: object) -> PulsarSettings:
    return PulsarSettings.model_validate(
        {"service_url": url, "max_attempts": 3, "retry_delays": [0.05], "drain_timeout": 2.0, **changes}
    )


async def test_key_shared_keeps_per_key_order_and_uses_both_consumers(pulsar_url: str, unique_topic: str) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    handled_by: Counter[str] = Counter()

    def recorder(name: str):  # type: ignore[no-untyped-def]
        async def handle(event: DomainEvent, attempt: int) -> None:
            assert isinstance(event, ContractEvent)
            if random.random() < 0.05:
                await asyncio.sleep(0.001)  # jitter: a later message of another key may overtake
            seen[event.key].append(event.seq)
            handled_by[name] += 1

        return handle

    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        one, two = Collector(recorder("one")), Collector(recorder("two"))
        await bus.subscribe(unique_topic, one, group="ks", ordered=True)
        await bus.subscribe(unique_topic, two, group="ks", ordered=True)
        sent = [make_event(n, key=f"key-{n % KEYS}") for n in range(KEYS * PER_KEY)]
        for start in range(0, len(sent), 500):
            await bus.publish_batch(unique_topic, sent[start : start + 500])
        expected = {m.message_id for m in sent}
        await one.wait_until(lambda: (one.ids() | two.ids()) >= expected, timeout=60)

    for key in {m.key for m in sent}:
        first_seen = list(dict.fromkeys(seen[key]))
        assert first_seen == [m.seq for m in sent if m.key == key], f"order broken for {key}"
    assert handled_by["one"] > 0 and handled_by["two"] > 0, handled_by
    # Key_Shared: each key is served by exactly one consumer.
    keys_one = {e.key for e in one.received if isinstance(e, ContractEvent)}
    keys_two = {e.key for e in two.received if isinstance(e, ContractEvent)}
    assert not (keys_one & keys_two)


async def test_slow_handler_does_not_stall_other_subscriptions(pulsar_url: str, unique_topic: str) -> None:
    release = asyncio.Event()

    async def stuck(event: DomainEvent, attempt: int) -> None:
        await release.wait()

    async with PulsarMessageBus(_settings(pulsar_url, concurrency=2)) as bus:
        slow, fast = Collector(stuck), Collector()
        await bus.subscribe(unique_topic, slow, group="slow")
        await bus.subscribe(unique_topic, fast, group="fast")
        sent = [make_event(n) for n in range(300)]
        await bus.publish_batch(unique_topic, sent)
        assert await fast.wait_for(300, timeout=20) == {m.message_id for m in sent}
        assert len(slow.received) == 0
        release.set()
        await slow.wait_for(300, timeout=20)


async def test_event_loop_stays_responsive_while_consuming(pulsar_url: str, unique_topic: str) -> None:
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)

    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        received = Collector()
        await bus.subscribe(unique_topic, received, group="lag")
        task = asyncio.create_task(probe())
        sent = [make_event(n, blob="x" * 1000) for n in range(3000)]
        await bus.publish_batch(unique_topic, sent)
        await received.wait_for(3000, timeout=30)
        stop.set()
        await task
    # The benchmark reports max and p99 lag; on a shared 2-core machine a single stall
    # can come from the OS descheduling a thread, so the test checks the typical turn
    # of the loop (median) and a generous bound on the worst one.
    assert statistics.median(lags) < 0.005, f"median loop lag {statistics.median(lags) * 1000:.1f} ms"
    assert max(lags) < 1.0, f"event loop blocked for {max(lags) * 1000:.1f} ms"


@pytest.mark.real_pulsar(lacks="Key_Shared re-dispatch when a consumer leaves")
async def test_key_shared_redispatches_keys_when_a_consumer_leaves(pulsar_url: str, unique_topic: str) -> None:
    never = asyncio.Event()
    held_keys: set[str] = set()

    async def stuck(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        held_keys.add(event.key)
        await never.wait()  # holds its messages unacknowledged until cancelled

    async with PulsarMessageBus(_settings(pulsar_url, drain_timeout=0.2)) as bus:
        stays, leaves = Collector(), Collector(stuck)
        await bus.subscribe(unique_topic, stays, group="ks", ordered=True)
        leaving = await bus.subscribe(unique_topic, leaves, group="ks", ordered=True)
        sent = [make_event(n, key=f"k{n % 10}") for n in range(200)]
        await bus.publish_batch(unique_topic, sent)
        # 10 keys of 20 messages: wait until the staying consumer did all of its keys.
        await stays.wait_until(lambda: len(stays.ids()) + 20 * len(held_keys) >= 200, timeout=30)
        assert held_keys, "both consumers should have been given keys"
        await leaving.cancel()
        later = [make_event(n, key=f"k{n % 10}") for n in range(200, 400)]
        await bus.publish_batch(unique_topic, later)
        # Every key, the departed consumer's included, now goes to the one that stays.
        await stays.wait_until(lambda: stays.ids() >= {m.message_id for m in sent + later}, timeout=30)


@pytest.mark.real_pulsar(lacks="partitioned topics and the admin API")
async def test_partitioned_topic_keeps_per_key_order(pulsar_url: str, unique_topic: str) -> None:
    admin = os.environ.get("BENTO_TEST_PULSAR_ADMIN_URL") or f"http://{urlparse(pulsar_url).hostname}:8080"
    request = urllib.request.Request(
        f"{admin}/admin/v2/persistent/public/default/{unique_topic}/partitions",
        data=b"4",
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
    seen: dict[str, list[int]] = defaultdict(list)

    async def record(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        seen[event.key].append(event.seq)

    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        one, two = Collector(record), Collector(record)
        await bus.subscribe(unique_topic, one, group="parts", ordered=True)
        await bus.subscribe(unique_topic, two, group="parts", ordered=True)
        sent = [make_event(n, key=f"key-{n % 8}") for n in range(800)]
        await bus.publish_batch(unique_topic, sent)
        await one.wait_until(lambda: len(one.ids() | two.ids()) >= 800, timeout=60)
    for key in {m.key for m in sent}:
        assert list(dict.fromkeys(seen[key])) == [m.seq for m in sent if m.key == key]


async def test_ordered_retry_keeps_the_key_in_order(pulsar_url: str, unique_topic: str) -> None:
    seen: list[int] = []

    async def flaky(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        if event.seq == 3 and attempt < 3:
            raise RuntimeError("not yet")
        seen.append(event.seq)

    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        received = Collector(flaky)
        await bus.subscribe(unique_topic, received, group="ordered", ordered=True)
        sent = [make_event(n, key="one-key") for n in range(10)]
        await bus.publish_batch(unique_topic, sent)
        await received.wait_for(10, timeout=20)
    assert seen == list(range(10))
    assert received.attempts[sent[3].message_id] == 3
