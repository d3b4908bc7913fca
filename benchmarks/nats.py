"""NatsMessageBus against raw nats-py JetStream, on the NATS server at 127.0.0.1:4222.

Run: .venv/bin/python benchmarks/nats.py [--messages 20000] [--size 1024] [--rounds 4]

Publishes N messages of about `size` bytes and consumes them, once through raw
nats-py and once through NatsMessageBus, with the same guarantees:
- publish: pipelined `publish_async` with a `Nats-Msg-Id` header, then every PubAck
  awaited (the bus: `publish_batch`, which also encodes each event);
- consume: a durable pull consumer with explicit acks, `fetch(128)` then ack each
  message (the bus: a subscribed handler, which also decodes each event and runs the
  shared `handle_delivery`; its puller keeps pull requests of 128 in flight).
Consumption is timed on a backlog (published first). Round trips are one message at a
time, publish to handler. Each phase runs `rounds` times, raw and bus back to back (who
goes first alternates); throughputs are medians over rounds and each ratio is the median
of the per-round ratios, which cancels most of a shared machine's load swings. The last
line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named nats.py, and Python puts its folder first on sys.path: without this
# line `import nats` would import the benchmark itself instead of nats-py.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402

from nats.aio.client import Client  # noqa: E402
from nats.js import JetStreamContext  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig  # noqa: E402

from bento.adapters.nats import NatsMessageBus, NatsSettings  # noqa: E402
from bento.application.serialization import JsonCodec  # noqa: E402
from bento.domain.events import DomainEvent  # noqa: E402
from bento.testing.events import ContractEvent, make_event  # noqa: E402

URL = "nats://127.0.0.1:4222"
CHUNK = 1000  # messages per publish_batch / per raw pipelined burst
FETCH = 128


def make_events(count: int, size: int) -> list[ContractEvent]:
    probe = len(JsonCodec().encode(make_event(0, key="k-00")))
    blob = "x" * max(0, size - probe)
    return [make_event(n, key=f"k-{n % 64:02d}", blob=blob) for n in range(count)]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- raw nats-py ----------------------------------------------------------------------------
async def raw_publish(js: JetStreamContext, subject: str, bodies: list[bytes], ids: list[str]) -> float:
    started = time.perf_counter()
    for start in range(0, len(bodies), CHUNK):
        futures = [
            await js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})
            for body, msg_id in zip(bodies[start : start + CHUNK], ids[start : start + CHUNK], strict=True)
        ]
        for ack in await asyncio.gather(*futures):
            assert not ack.duplicate
    return len(bodies) / (time.perf_counter() - started)


async def raw_consume(js: JetStreamContext, stream: str, subject: str, count: int) -> float:
    durable = f"raw_{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=1000,
            ack_wait=60,
        ),
    )
    psub = await js.pull_subscribe_bind(durable, stream)
    started, seen = time.perf_counter(), 0
    while seen < count:
        for msg in await psub.fetch(FETCH, timeout=5):
            await msg.ack()
            seen += 1
    elapsed = time.perf_counter() - started
    await psub.unsubscribe()
    return count / elapsed


async def raw_round_trips(js: JetStreamContext, stream: str, subject: str, body: bytes, n: int) -> list[float]:
    durable = f"rtt_{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
        ),
    )
    psub = await js.pull_subscribe_bind(durable, stream)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fetch = asyncio.ensure_future(psub.fetch(1, timeout=5))  # the pull request waits first
        await js.publish(subject, body)
        for msg in await fetch:
            await msg.ack()
        samples.append(time.perf_counter() - started)
    await psub.unsubscribe()
    return samples


# -- the bus -------------------------------------------------------------------------------
class Counter:
    def __init__(self, target: int) -> None:
        self.count, self.target, self.done = 0, target, asyncio.Event()

    async def __call__(self, event: DomainEvent) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


async def bus_publish(bus: NatsMessageBus, topic: str, events: list[ContractEvent]) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), CHUNK):
        await bus.publish_batch(topic, events[start : start + CHUNK])
    return len(events) / (time.perf_counter() - started)


async def bus_consume(bus: NatsMessageBus, topic: str, count: int) -> float:
    counter = Counter(count)
    started = time.perf_counter()
    subscription = await bus.subscribe(topic, counter, group=f"bench_{uuid.uuid4().hex[:8]}")
    await asyncio.wait_for(counter.done.wait(), 120)
    elapsed = time.perf_counter() - started
    await subscription.cancel()
    return count / elapsed


async def bus_round_trips(bus: NatsMessageBus, topic: str, event: ContractEvent, n: int) -> list[float]:
    arrived = asyncio.Event()

    async def handler(_: DomainEvent) -> None:
        arrived.set()

    subscription = await bus.subscribe(topic, handler, group="rtt")
    samples = []
    for _ in range(n):
        arrived.clear()
        started = time.perf_counter()
        await bus.publish(topic, event.model_copy(update={"message_id": str(uuid.uuid4())}))
        await asyncio.wait_for(arrived.wait(), 5)
        samples.append(time.perf_counter() - started)
    await subscription.cancel()
    return samples


async def one_round(
    js: JetStreamContext, bus: NatsMessageBus, raw_stream: str, subject: str, r: int, count: int, size: int
) -> dict[str, float]:
    """Publish then consume `count` messages, raw and bus back to back; who goes first
    alternates by round, so a burst of load elsewhere hits both sides alike."""
    events = make_events(count, size)
    codec = JsonCodec()
    bodies, ids, topic = [codec.encode(e) for e in events], [e.message_id for e in events], f"bench.r{r}"
    phases: dict[str, Callable[[], Awaitable[float]]] = {
        "raw_pub": lambda: raw_publish(js, subject, bodies, ids),
        "bus_pub": lambda: bus_publish(bus, topic, events),
        "raw_con": lambda: raw_consume(js, raw_stream, subject, count),
        "bus_con": lambda: bus_consume(bus, topic, count),
    }
    result: dict[str, float] = {}
    for pair in (["raw_pub", "bus_pub"], ["raw_con", "bus_con"]):
        for name in pair if r % 2 == 0 else reversed(pair):
            result[name] = await phases[name]()
    return result


async def main(count: int, size: int, rounds: int, rtt_count: int) -> dict[str, object]:
    run = uuid.uuid4().hex[:8]
    settings = NatsSettings(
        servers=[URL],
        stream_name=f"BENCH_{run}",
        subject_prefix=f"bench{run}",
        storage="file",
        new_group_start="all",
        fetch_batch=FETCH,
        max_ack_pending=1000,
    )
    nc = Client()
    await nc.connect(URL)
    js = nc.jetstream()
    raw_stream = f"BENCHRAW_{run}"
    await js.add_stream(StreamConfig(name=raw_stream, subjects=[f"benchraw{run}.>"]))
    codec = JsonCodec()
    figures: dict[str, list[float]] = {k: [] for k in ("raw_pub", "bus_pub", "raw_con", "bus_con")}
    try:
        async with NatsMessageBus(settings) as bus:
            for r in range(rounds):
                for name, value in (
                    await one_round(js, bus, raw_stream, f"benchraw{run}.r{r}", r, count, size)
                ).items():
                    figures[name].append(value)
                print(
                    f"round {r + 1}: publish raw {figures['raw_pub'][-1]:,.0f}/s bus {figures['bus_pub'][-1]:,.0f}/s;"
                    f" consume raw {figures['raw_con'][-1]:,.0f}/s bus {figures['bus_con'][-1]:,.0f}/s"
                )
            one = make_events(1, size)[0]
            raw_rtt = await raw_round_trips(js, raw_stream, f"benchraw{run}.rtt", codec.encode(one), rtt_count)
            bus_rtt = await bus_round_trips(bus, "bench.rtt", one, rtt_count)
    finally:
        for name in (raw_stream, settings.stream_name, settings.dead_letter_stream):
            await js.delete_stream(name)
        await nc.close()
    median = {k: statistics.median(v) for k, v in figures.items()}

    def ratio(bus_key: str, raw_key: str) -> float:
        # Median of per-round ratios: each round's pair ran back to back under the same load.
        return round(statistics.median(b / r for b, r in zip(figures[bus_key], figures[raw_key], strict=True)), 3)

    return {
        "messages": count,
        "size_bytes": size,
        "rounds": rounds,
        "raw_publish_per_s": round(median["raw_pub"]),
        "bus_publish_per_s": round(median["bus_pub"]),
        "raw_consume_per_s": round(median["raw_con"]),
        "bus_consume_per_s": round(median["bus_con"]),
        "publish_ratio_to_raw": ratio("bus_pub", "raw_pub"),
        "consume_ratio_to_raw": ratio("bus_con", "raw_con"),
        "raw_rtt_p50_ms": round(percentile(raw_rtt, 0.5), 3),
        "raw_rtt_p99_ms": round(percentile(raw_rtt, 0.99), 3),
        "bus_rtt_p50_ms": round(percentile(bus_rtt, 0.5), 3),
        "bus_rtt_p99_ms": round(percentile(bus_rtt, 0.99), 3),
        "rtt_samples": rtt_count,
        "per_round": {k: [round(x) for x in v] for k, v in figures.items()},
        "rtt_median_ratio": round(statistics.median(bus_rtt) / statistics.median(raw_rtt), 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rtt", type=int, default=500)
    args = parser.parse_args()
    result = asyncio.run(main(args.messages, args.size, args.rounds, args.rtt))
    print(
        f"publish: raw {result['raw_publish_per_s']:,}/s, bus {result['bus_publish_per_s']:,}/s "
        f"(ratio {result['publish_ratio_to_raw']})"
    )
    print(
        f"consume: raw {result['raw_consume_per_s']:,}/s, bus {result['bus_consume_per_s']:,}/s "
        f"(ratio {result['consume_ratio_to_raw']})"
    )
    print(
        f"round trip p50/p99: raw {result['raw_rtt_p50_ms']}/{result['raw_rtt_p99_ms']} ms, "
        f"bus {result['bus_rtt_p50_ms']}/{result['bus_rtt_p99_ms']} ms"
    )
    print(json.dumps(result))
