"""Redis Streams: the adapter against raw redis-py with the same guarantees, in one run.

Run: .venv/bin/python benchmarks/redis.py [--messages 20000] [--size 1024] [--batch 500]

Same guarantees and the same work on both sides: the raw publisher encodes the same
events with the same codec and sends pipelined XADDs in batches of `--batch`, against
`publish_batch`. The raw consumer does XREADGROUP COUNT batch, decodes each entry into
the event class, awaits the handler and sends one XACK per batch (ack after handling),
against a subscription, timed until every entry is acknowledged. Round trip: publish one message and
wait for its handler, sequentially (p50/p99), for both. Each figure is the best of
`--rounds`; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named redis.py, and Python puts its folder first on sys.path: without this
# line `import redis` would import the benchmark itself instead of redis-py.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

from redis.asyncio import Redis  # noqa: E402

from bento.adapters.redis import RedisMessageBus, RedisSettings  # noqa: E402
from bento.application.serialization import JsonCodec  # noqa: E402
from bento.domain.events import DomainEvent  # noqa: E402

URL = "redis://127.0.0.1:6379/0"
CODEC = JsonCodec()


class Payload(DomainEvent, name="bench.redis.payload"):
    seq: int
    blob: str


def _events(count: int, size: int) -> list[Payload]:
    return [Payload(seq=n, blob="x" * size) for n in range(count)]


async def _handler(event: DomainEvent) -> None:
    return None


async def _drop(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


# -- raw redis-py ------------------------------------------------------------------------
async def raw_publish(redis: Redis, stream: str, events: list[Payload], batch: int) -> float:
    encode = CODEC.encode
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for event in events[start : start + batch]:
                pipe.xadd(stream, {b"b": encode(event)})
            await pipe.execute()
    return time.perf_counter() - started


async def raw_consume(redis: Redis, stream: str, count: int, batch: int) -> float:
    handled = 0
    started = time.perf_counter()
    while handled < count:
        reply = await redis.xreadgroup("g", "c", {stream: ">"}, count=batch, block=1000)
        for _, entries in reply:
            ids = []
            for entry_id, fields in entries:
                await _handler(CODEC.decode(fields[b"b"]))
                handled += 1
                ids.append(entry_id)
            await redis.xack(stream, "g", *ids)
    return time.perf_counter() - started


async def raw_round_trips(redis: Redis, stream: str, trips: int) -> list[float]:
    await redis.xgroup_create(stream, "rt", id="$", mkstream=True)
    reader = Redis.from_url(URL)
    latencies = []
    for n in range(trips):
        started = time.perf_counter()
        await redis.xadd(stream, {b"b": CODEC.encode(Payload(seq=n, blob=""))})
        reply = await reader.xreadgroup("rt", "c", {stream: ">"}, count=1, block=1000)
        [(_, [(entry_id, fields)])] = reply
        await _handler(CODEC.decode(fields[b"b"]))
        await reader.xack(stream, "rt", entry_id)
        latencies.append(time.perf_counter() - started)
    await reader.aclose()
    return latencies


# -- the adapter -------------------------------------------------------------------------
def _settings(prefix: str, batch: int) -> RedisSettings:
    return RedisSettings.model_validate({"url": URL, "key_prefix": prefix, "batch_size": batch, "block_ms": 1000})


async def bus_publish(bus: RedisMessageBus, events: list[Payload], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        await bus.publish_batch("bench", events[start : start + batch])
    return time.perf_counter() - started


async def bus_consume(prefix: str, redis: Redis, events: list[Payload], batch: int) -> float:
    """Publish first (untimed) into a group created beforehand, then time the drain."""
    stream = f"{prefix}stream:bench"
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    async with RedisMessageBus(_settings(prefix, batch)) as bus:
        await bus_publish(bus, events, batch)
        done = asyncio.Event()
        handled = 0

        async def handler(event: DomainEvent) -> None:
            nonlocal handled
            handled += 1
            if handled == len(events):
                done.set()

        started = time.perf_counter()
        await bus.subscribe("bench", handler, group="g")
        await done.wait()
        while (await redis.xpending(stream, "g"))["pending"]:  # noqa: ASYNC110 - the last batch's XACK
            await asyncio.sleep(0.001)
        return time.perf_counter() - started


async def bus_round_trips(prefix: str, trips: int) -> list[float]:
    async with RedisMessageBus(_settings(prefix, 100)) as bus:
        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def handler(event: DomainEvent) -> None:
            arrived.put_nowait(time.perf_counter())

        await bus.subscribe("rt", handler, group="rt")
        latencies = []
        for n in range(trips):
            started = time.perf_counter()
            await bus.publish("rt", Payload(seq=n, blob=""))
            latencies.append(await arrived.get() - started)
        return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


async def main(messages: int, size: int, batch: int, rounds: int, trips: int) -> dict[str, Any]:
    redis = Redis.from_url(URL)
    events = _events(messages, size)
    figures: dict[str, list[float]] = {"raw_pub": [], "bus_pub": [], "raw_con": [], "bus_con": []}
    try:
        # Warm-up: the first 20 MB written to a fresh Redis costs allocator growth; don't bill it to either side.
        warm = f"bench:{uuid.uuid4().hex[:8]}:"
        await raw_publish(redis, f"{warm}warm", events, batch)
        await _drop(redis, warm)
        for round_no in range(rounds):
            # Alternate who goes first, so neither side always meets a colder server.
            for side in ("raw", "bus") if round_no % 2 == 0 else ("bus", "raw"):
                prefix = f"bench:{uuid.uuid4().hex[:8]}:"
                if side == "raw":
                    stream = f"{prefix}raw"
                    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
                    figures["raw_pub"].append(await raw_publish(redis, stream, events, batch))
                    figures["raw_con"].append(await raw_consume(redis, stream, messages, batch))
                else:
                    async with RedisMessageBus(_settings(prefix, batch)) as bus:
                        figures["bus_pub"].append(await bus_publish(bus, events, batch))
                    await _drop(redis, prefix)
                    figures["bus_con"].append(await bus_consume(prefix, redis, events, batch))
                await _drop(redis, prefix)
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        raw_rt = await raw_round_trips(redis, f"{prefix}rt", trips)
        bus_rt = await bus_round_trips(prefix, trips)
        await _drop(redis, prefix)
    finally:
        await redis.aclose()
    best = {name: min(values) for name, values in figures.items()}
    rate = {name: messages / seconds for name, seconds in best.items()}
    return {
        "messages": messages,
        "size_bytes": size,
        "batch": batch,
        "raw_publish_per_s": round(rate["raw_pub"]),
        "adapter_publish_per_s": round(rate["bus_pub"]),
        "publish_ratio_to_raw": round(rate["bus_pub"] / rate["raw_pub"], 3),
        "raw_consume_per_s": round(rate["raw_con"]),
        "adapter_consume_per_s": round(rate["bus_con"]),
        "consume_ratio_to_raw": round(rate["bus_con"] / rate["raw_con"], 3),
        "raw_round_trip_p50_ms": round(_pct(raw_rt, 0.5), 3),
        "raw_round_trip_p99_ms": round(_pct(raw_rt, 0.99), 3),
        "adapter_round_trip_p50_ms": round(_pct(bus_rt, 0.5), 3),
        "adapter_round_trip_p99_ms": round(_pct(bus_rt, 0.99), 3),
        "adapter_round_trip_mean_ms": round(statistics.fmean(bus_rt) * 1000, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--trips", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(main(args.messages, args.size, args.batch, args.rounds, args.trips))
    print(f"{result['messages']} x {result['size_bytes']} B, batches of {result['batch']}")
    for what in ("publish", "consume"):
        print(
            f"  {what:8s} raw {result[f'raw_{what}_per_s']:>8,}/s   adapter {result[f'adapter_{what}_per_s']:>8,}/s"
            f"   ratio {result[f'{what}_ratio_to_raw']:.2f}"
        )
    print(
        f"  round trip p50/p99: raw {result['raw_round_trip_p50_ms']:.2f}/{result['raw_round_trip_p99_ms']:.2f} ms"
        f"   adapter {result['adapter_round_trip_p50_ms']:.2f}/{result['adapter_round_trip_p99_ms']:.2f} ms"
    )
    print(json.dumps(result))
