"""KafkaMessageBus against raw aiokafka, on a private tansu broker started like the tests do.

Run: .venv/bin/python benchmarks/kafka.py [--messages 20000] [--size 1024] [--rounds 3]
(or --url kafka://host:9092 to use a running Kafka instead of starting tansu)

Publishes N messages of about `size` bytes and consumes them, once through raw aiokafka
and once through KafkaMessageBus, with the same guarantees:
- publish: `acks=all`, a window of 1,000 records handed to the producer, then every ack
  awaited (the bus: `publish_batch` per window, which also encodes each event);
- consume: a consumer group, `getmany`, each value decoded with the same JsonCodec and
  passed to the same counting handler (what any consumer of Bento's events does), then a
  manual commit per batch (the bus: that handler subscribed, run through the shared
  `handle_delivery` in per-key lanes, which commits contiguous offsets every
  `commit_interval`). `--raw-decodes no` leaves decoding and handler out of the raw side.
Consumption is timed on a backlog, from the first message handled to the last, so the
group join (about 3 s on tansu, its initial rebalance delay) counts for neither side.
Round trips are one message at a time, publish to handler. Each phase runs `rounds`
times, raw and bus back to back (who goes first alternates); each ratio is the median of
the per-round ratios. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bento.adapters.kafka import KafkaMessageBus, KafkaSettings
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent, make_event

# The private test-server launchers live in tests/servers (imported as `servers`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers.tansu import Tansu

WINDOW = 1000
PARTITIONS = 8
#: Client CPU seconds per consumed message, by phase: this process's CPU only (the broker
#: runs in its own), so it shows the client's own cost even when the machine is noisy.
CPU: dict[str, list[float]] = {"raw_con": [], "bus_con": []}


def make_events(count: int, size: int) -> list[ContractEvent]:
    probe = len(JsonCodec().encode(make_event(0, key="k-00")))
    blob = "x" * max(0, size - probe)
    return [make_event(n, key=f"k-{n % 64:02d}", blob=blob) for n in range(count)]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- raw aiokafka ----------------------------------------------------------------------------
async def raw_publish(producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(records), WINDOW):
        futures = [await producer.send(topic, body, key=key) for key, body in records[start : start + WINDOW]]
        await asyncio.gather(*futures)
    return len(records) / (time.perf_counter() - started)


async def raw_consume(bootstrap: str, topic: str, count: int, *, decode: bool = True) -> float:
    codec, handler = JsonCodec(), Counter(count)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    await consumer.start()
    seen, first, cpu = 0, 0.0, 0.0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            if batches and not first:
                first, cpu = time.perf_counter(), time.process_time()
            for records in batches.values():
                seen += len(records)
                if decode:
                    for record in records:
                        await handler(codec.decode(record.value))
            if batches:
                await consumer.commit()
        CPU["raw_con"].append((time.process_time() - cpu) / count)
        return count / (time.perf_counter() - first)
    finally:
        await consumer.stop()


async def raw_round_trips(producer: AIOKafkaProducer, bootstrap: str, topic: str, body: bytes, n: int) -> list[float]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id="raw-rtt", enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    await producer.send_and_wait(topic, b"warm-up", key=b"k")
    while not await consumer.getmany(timeout_ms=200):
        pass
    samples = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            await producer.send_and_wait(topic, body, key=b"k")
            while True:
                batches = await consumer.getmany(timeout_ms=1)
                if batches:
                    await consumer.commit()
                    break
            samples.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
    return samples


# -- the bus ---------------------------------------------------------------------------------
class Counter:
    def __init__(self, target: int) -> None:
        self.count, self.target, self.first, self.cpu, self.done = 0, target, 0.0, 0.0, asyncio.Event()

    async def __call__(self, event: DomainEvent) -> None:
        if not self.count:
            self.first, self.cpu = time.perf_counter(), time.process_time()
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def bus_publish(bus: KafkaMessageBus, topic: str, events: list[ContractEvent]) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), WINDOW):
        await bus.publish_batch(topic, events[start : start + WINDOW])
    return len(events) / (time.perf_counter() - started)


async def bus_consume(bus: KafkaMessageBus, topic: str, count: int) -> float:
    counter = Counter(count)
    subscription = await bus.subscribe(topic, counter, group=f"bus-{uuid.uuid4().hex[:8]}")
    await asyncio.wait_for(counter.done.wait(), 180)
    elapsed = time.perf_counter() - counter.first
    CPU["bus_con"].append((time.process_time() - counter.cpu) / count)
    await subscription.cancel()
    return count / elapsed


async def bus_round_trips(bus: KafkaMessageBus, topic: str, event: ContractEvent, n: int) -> list[float]:
    arrived = asyncio.Event()

    async def handler(_: DomainEvent) -> None:
        arrived.set()

    subscription = await bus.subscribe(topic, handler, group="bus-rtt")
    await bus.publish(topic, event.model_copy(update={"message_id": str(uuid.uuid4())}))
    await asyncio.wait_for(arrived.wait(), 30)  # the group join
    samples = []
    for _ in range(n):
        arrived.clear()
        started = time.perf_counter()
        await bus.publish(topic, event.model_copy(update={"message_id": str(uuid.uuid4())}))
        await asyncio.wait_for(arrived.wait(), 5)
        samples.append(time.perf_counter() - started)
    await subscription.cancel()
    return samples


async def main(url: str, count: int, size: int, rounds: int, rtt_count: int, raw_decodes: bool) -> dict[str, object]:
    bootstrap = url.split("://", 1)[-1]
    run = uuid.uuid4().hex[:8]
    settings = KafkaSettings(url=url, topic_prefix=f"bench-{run}.", partitions=PARTITIONS)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    codec = JsonCodec()
    figures: dict[str, list[float]] = {k: [] for k in ("raw_pub", "bus_pub", "raw_con", "bus_con")}
    try:
        async with KafkaMessageBus(settings) as bus:
            for r in range(rounds):
                events = make_events(count, size)
                records = [(e.metadata.aggregate_id.encode(), codec.encode(e)) for e in events]
                raw_topic = f"benchraw-{run}.r{r}"
                await admin.create_topics([NewTopic(raw_topic, PARTITIONS, 1)])
                phases: dict[str, Callable[[], Awaitable[float]]] = {
                    "raw_pub": lambda: raw_publish(producer, raw_topic, records),  # noqa: B023
                    "bus_pub": lambda: bus_publish(bus, f"r{r}", events),  # noqa: B023
                    "raw_con": lambda: raw_consume(bootstrap, raw_topic, count, decode=raw_decodes),  # noqa: B023
                    "bus_con": lambda: bus_consume(bus, f"r{r}", count),  # noqa: B023
                }
                for pair in (["raw_pub", "bus_pub"], ["raw_con", "bus_con"]):
                    for name in pair if r % 2 == 0 else reversed(pair):
                        figures[name].append(await phases[name]())
                print(
                    f"round {r + 1}: publish raw {figures['raw_pub'][-1]:,.0f}/s bus {figures['bus_pub'][-1]:,.0f}/s;"
                    f" consume raw {figures['raw_con'][-1]:,.0f}/s bus {figures['bus_con'][-1]:,.0f}/s",
                    flush=True,
                )
            one = make_events(1, size)[0]
            await admin.create_topics([NewTopic(f"benchraw-{run}.rtt", 1, 1)])
            raw_rtt = await raw_round_trips(producer, bootstrap, f"benchraw-{run}.rtt", codec.encode(one), rtt_count)
            bus_rtt = await bus_round_trips(bus, "rtt", one, rtt_count)
    finally:
        await producer.stop()
        await admin.close()
    median = {k: statistics.median(v) for k, v in figures.items()}

    def ratio(bus_key: str, raw_key: str) -> float:
        return round(statistics.median(b / r for b, r in zip(figures[bus_key], figures[raw_key], strict=True)), 3)

    return {
        "broker": "tansu" if url.startswith("kafka://127.0.0.1") else "kafka",
        "messages": count,
        "size_bytes": size,
        "rounds": rounds,
        "raw_consume_decodes": raw_decodes,
        "raw_publish_per_s": round(median["raw_pub"]),
        "bus_publish_per_s": round(median["bus_pub"]),
        "raw_consume_per_s": round(median["raw_con"]),
        "bus_consume_per_s": round(median["bus_con"]),
        "publish_ratio_to_raw": ratio("bus_pub", "raw_pub"),
        "consume_ratio_to_raw": ratio("bus_con", "raw_con"),
        "raw_consume_cpu_us_per_msg": round(statistics.median(CPU["raw_con"]) * 1e6, 1),
        "bus_consume_cpu_us_per_msg": round(statistics.median(CPU["bus_con"]) * 1e6, 1),
        "raw_rtt_p50_ms": round(percentile(raw_rtt, 0.5), 3),
        "raw_rtt_p99_ms": round(percentile(raw_rtt, 0.99), 3),
        "bus_rtt_p50_ms": round(percentile(bus_rtt, 0.5), 3),
        "bus_rtt_p99_ms": round(percentile(bus_rtt, 0.99), 3),
        "rtt_samples": rtt_count,
        "per_round": {k: [round(x) for x in v] for k, v in figures.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="a running Kafka (kafka://host:9092); default: start tansu")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt", type=int, default=500)
    parser.add_argument("--raw-decodes", choices=["yes", "no"], default="yes")
    args = parser.parse_args()
    decodes = args.raw_decodes == "yes"
    if args.url:
        result = asyncio.run(main(args.url, args.messages, args.size, args.rounds, args.rtt, decodes))
    else:
        with Tansu() as broker:
            result = asyncio.run(main(broker.url, args.messages, args.size, args.rounds, args.rtt, decodes))
    print(
        f"publish: raw {result['raw_publish_per_s']:,}/s, bus {result['bus_publish_per_s']:,}/s "
        f"(ratio {result['publish_ratio_to_raw']})"
    )
    print(
        f"consume: raw {result['raw_consume_per_s']:,}/s, bus {result['bus_consume_per_s']:,}/s "
        f"(ratio {result['consume_ratio_to_raw']})"
    )
    print(
        f"consume CPU per message: raw {result['raw_consume_cpu_us_per_msg']} µs, "
        f"bus {result['bus_consume_cpu_us_per_msg']} µs"
    )
    print(
        f"round trip p50/p99: raw {result['raw_rtt_p50_ms']}/{result['raw_rtt_p99_ms']} ms, "
        f"bus {result['bus_rtt_p50_ms']}/{result['bus_rtt_p99_ms']} ms"
    )
    print(json.dumps(result))
