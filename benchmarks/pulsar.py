"""PulsarMessageBus against the raw pulsar-client, on a private pulsar-lite broker.

Run: .venv/bin/python benchmarks/pulsar.py [--messages 20000] [--size 1024]

Publishes N messages of about `size` bytes and consumes them, once through raw
pulsar-client (send_async + flush; receive + acknowledge in a loop) and once through
PulsarMessageBus (publish_batch; a subscribed handler), on the same broker. Both
sides use the same producer settings: KeyBased batching, batching_max_messages 1000,
128 KiB batches, batching_max_publish_delay_ms 1, max_pending_messages 10000 (the
bus's defaults), and the same consumer settings (Shared, receiver_queue_size 1000).
Consumption is timed on a backlog: the subscription is created, closed, filled, then
opened again. Round trips are publish() to handler, one message at a time.

Event-loop lag: a probe task sleeps 1 ms in a loop and records how late it wakes,
during the bus phases, on an idle loop (machine noise), and on a loop whose process
runs the raw client in a worker thread (what any Python thread busy with
pulsar-client costs the loop through the GIL, with no bus code involved).

The machine is shared and noisy: raw and bus rounds alternate, and the ratios use the
median of the rounds (best rounds are printed too). The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named pulsar.py, and Python puts its folder first on sys.path: without
# this line `import pulsar` would import the benchmark itself instead of pulsar-client.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import pulsar  # noqa: E402

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings  # noqa: E402
from bento.application.serialization import JsonCodec  # noqa: E402
from bento.domain.events import DomainEvent  # noqa: E402
from bento.testing.events import ContractEvent, make_event  # noqa: E402

# The private test-server launchers live in tests/servers (imported as `servers`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers.pulsar_lite import PulsarLite  # noqa: E402

GROUP = "bench"


def make_events(count: int, size: int) -> list[ContractEvent]:
    probe = len(make_event(0, key="k-00").model_dump_json()) + 40  # envelope overhead
    blob = "x" * max(0, size - probe)
    return [make_event(n, key=f"k-{n % 64:02d}", blob=blob) for n in range(count)]


# -- raw client ----------------------------------------------------------------------------
def raw_publish(
    client: pulsar.Client, topic: str, bodies: list[bytes], keys: list[str], encode: list[ContractEvent] | None = None
) -> float:
    """send_async + flush; with `encode`, each event is encoded by the codec just before its send."""
    producer = client.create_producer(
        topic,
        batching_enabled=True,
        batching_type=pulsar.BatchingType.KeyBased,
        batching_max_publish_delay_ms=1,
        block_if_queue_full=True,
        max_pending_messages=10_000,
    )
    done, confirmed = threading.Event(), [0]

    def callback(result: pulsar.Result, _msg_id: object) -> None:
        confirmed[0] += 1
        if confirmed[0] == len(bodies):
            done.set()

    codec = JsonCodec()
    started = time.perf_counter()
    if encode is None:
        for body, key in zip(bodies, keys, strict=True):
            producer.send_async(body, callback, partition_key=key)
    else:
        for event in encode:
            producer.send_async(codec.encode(event), callback, partition_key=event.key)
    producer.flush()
    done.wait(120)
    elapsed = time.perf_counter() - started
    producer.close()
    return len(bodies) / elapsed


def raw_consume(client: pulsar.Client, topic: str, count: int, *, decode: bool = False) -> float:
    """receive + acknowledge; with `decode`, each body also goes through the codec."""
    consumer = client.subscribe(topic, GROUP, consumer_type=pulsar.ConsumerType.Shared)
    codec = JsonCodec()
    started = time.perf_counter()
    for _ in range(count):
        message = consumer.receive(10_000)
        if decode:
            codec.decode(message.data())
        consumer.acknowledge(message)
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


def raw_round_trips(client: pulsar.Client, topic: str, body: bytes, count: int) -> list[float]:
    consumer = client.subscribe(topic, "rtt", consumer_type=pulsar.ConsumerType.Shared)
    producer = client.create_producer(
        topic, batching_enabled=True, batching_type=pulsar.BatchingType.KeyBased, batching_max_publish_delay_ms=1
    )
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        producer.send(body)
        consumer.acknowledge(consumer.receive(10_000))
        samples.append(time.perf_counter() - started)
    producer.close()
    consumer.close()
    return samples


# -- CPU budget ---------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds of this process (every thread, pulsar-client's C++ threads included) and
    of the broker process over one phase: how much of the machine a phase used."""

    def __init__(self, broker_pid: int) -> None:
        self._stat = f"/proc/{broker_pid}/stat"
        self.client = self.broker = self.wall = 0.0

    def _broker_seconds(self) -> float:
        with open(self._stat) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuMeter:
        self._started = (time.process_time(), self._broker_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        client, broker, wall = self._started
        self.client = time.process_time() - client
        self.broker = self._broker_seconds() - broker
        self.wall = time.perf_counter() - wall


def decode_cost_us(bodies: list[bytes]) -> float:
    """Microseconds to decode one body, alone on one thread (no client running)."""
    codec = JsonCodec()
    started = time.perf_counter()
    for body in bodies:
        codec.decode(body)
    return (time.perf_counter() - started) / len(bodies) * 1e6


# -- bus ----------------------------------------------------------------------------------
class GcPauses:
    """Records how long each garbage collection took (they stall the loop like anything else)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class LagProbe:
    """Sleeps 1 ms in a loop and records how late it wakes: the event loop's blocking."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, time.perf_counter() - before - 0.001))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def probed_in_thread(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, list[float]]:
    """Run a raw-client function in a worker thread while a LagProbe watches this loop."""
    probe = LagProbe()
    probe.start()
    rate = await asyncio.to_thread(fn, *args, **kwargs)
    await probe.stop()
    return rate, probe.lags


def run_raw(lags: list[float], fn: Any, *args: Any, **kwargs: Any) -> float:
    rate, seen = asyncio.run(probed_in_thread(fn, *args, **kwargs))
    lags.extend(seen)
    return rate


async def bus_round(url: str, events: list[ContractEvent], rtt_count: int, meter: CpuMeter) -> dict[str, Any]:
    """One bus round: idle-loop lag baseline, publish, consume a backlog, round trips."""
    topic = f"bench.bus.{uuid.uuid4().hex[:8]}"
    count = len(events)
    idle = LagProbe()
    idle.start()
    await asyncio.sleep(0.5)
    await idle.stop()
    probe = LagProbe()
    async with PulsarMessageBus(PulsarSettings(service_url=url)) as bus:
        probe.start()
        handled = 0
        all_done = asyncio.Event()

        async def count_handler(event: DomainEvent) -> None:
            nonlocal handled
            handled += 1
            if handled == count:
                all_done.set()

        # Create the durable subscription, close it, fill the backlog, then time the drain.
        await (await bus.subscribe(topic, count_handler, group=GROUP)).cancel()
        started = time.perf_counter()
        await bus.publish_batch(topic, events)  # one pipeline, like send_async + flush
        publish_rate = count / (time.perf_counter() - started)
        with meter:
            started = time.perf_counter()
            subscription = await bus.subscribe(topic, count_handler, group=GROUP)
            await asyncio.wait_for(all_done.wait(), 120)
            consume_rate = count / (time.perf_counter() - started)
        await subscription.cancel()

        rtts: list[float] = []
        sent_at: dict[str, float] = {}
        arrived = asyncio.Event()

        async def rtt_handler(event: DomainEvent) -> None:
            rtts.append(time.perf_counter() - sent_at[event.message_id])
            arrived.set()

        await bus.subscribe(f"{topic}.rtt", rtt_handler, group="rtt")
        for event in events[:rtt_count]:
            arrived.clear()
            sent_at[event.message_id] = time.perf_counter()
            await bus.publish(f"{topic}.rtt", event)
            await asyncio.wait_for(arrived.wait(), 10)
        await probe.stop()
    return {"publish": publish_rate, "consume": consume_rate, "rtts": rtts, "lags": probe.lags, "idle": idle.lags}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5, help="raw and bus alternate; medians count")
    args = parser.parse_args()
    events = make_events(args.messages, args.size)
    codec = JsonCodec()
    bodies = [codec.encode(ev) for ev in events]  # the raw client sends the very same bytes
    keys = [ev.key for ev in events]
    raw: dict[str, list[float]] = {"publish": [], "consume": [], "publish_codec": [], "consume_codec": []}
    bus: dict[str, list[float]] = {"publish": [], "consume": [], "rtts": [], "lags": [], "idle": [], "gc": []}
    raw_lags: list[float] = []
    cpu: dict[str, list[CpuMeter]] = {"raw_consume": [], "bus_consume": []}
    with PulsarLite() as broker:
        assert broker.process is not None
        client = pulsar.Client(broker.url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
        for _ in range(args.rounds):
            raw_topic = f"persistent://public/default/bench.raw.{uuid.uuid4().hex[:8]}"
            client.subscribe(raw_topic, GROUP, consumer_type=pulsar.ConsumerType.Shared).close()
            raw["publish"].append(run_raw(raw_lags, raw_publish, client, raw_topic, bodies, keys))
            with CpuMeter(broker.process.pid) as meter:
                raw["consume"].append(run_raw(raw_lags, raw_consume, client, raw_topic, len(bodies)))
            cpu["raw_consume"].append(meter)
            raw["publish_codec"].append(run_raw(raw_lags, raw_publish, client, raw_topic, bodies, keys, encode=events))
            raw["consume_codec"].append(run_raw(raw_lags, raw_consume, client, raw_topic, len(bodies), decode=True))
            with GcPauses() as gc_pauses:
                meter = CpuMeter(broker.process.pid)
                outcome = asyncio.run(bus_round(broker.url, events, args.round_trips, meter))
            cpu["bus_consume"].append(meter)
            bus["gc"].extend(gc_pauses.pauses)
            for name in ("publish", "consume"):
                bus[name].append(outcome[name])
            for name in ("rtts", "lags", "idle"):
                bus[name].extend(outcome[name])
        raw_rtts = raw_round_trips(
            client, f"persistent://public/default/bench.rtt.{uuid.uuid4().hex[:8]}", bodies[0], args.round_trips
        )
        client.close()
    decode_us = decode_cost_us(bodies)

    med = {f"raw_{k}": statistics.median(v) for k, v in raw.items()} | {
        f"bus_{k}": statistics.median(bus[k]) for k in ("publish", "consume")
    }
    best = {f"raw_{k}": max(v) for k, v in raw.items()} | {f"bus_{k}": max(bus[k]) for k in ("publish", "consume")}
    result = {
        "messages": args.messages,
        "message_bytes": len(bodies[0]),
        "rounds": args.rounds,
        "statistic": "median of rounds",
        "raw_publish_per_s": round(med["raw_publish"]),
        "bus_publish_per_s": round(med["bus_publish"]),
        "publish_ratio_to_raw": round(med["bus_publish"] / med["raw_publish"], 3),
        "raw_publish_with_codec_per_s": round(med["raw_publish_codec"]),
        "publish_ratio_to_raw_with_codec": round(med["bus_publish"] / med["raw_publish_codec"], 3),
        "raw_consume_per_s": round(med["raw_consume"]),
        "bus_consume_per_s": round(med["bus_consume"]),
        "consume_ratio_to_raw": round(med["bus_consume"] / med["raw_consume"], 3),
        "raw_consume_with_codec_per_s": round(med["raw_consume_codec"]),
        "consume_ratio_to_raw_with_codec": round(med["bus_consume"] / med["raw_consume_codec"], 3),
        "best_round_publish_ratio_to_raw": round(best["bus_publish"] / best["raw_publish"], 3),
        "best_round_consume_ratio_to_raw": round(best["bus_consume"] / best["raw_consume"], 3),
        "rtt_p50_ms": ms(statistics.median(bus["rtts"])),
        "rtt_p99_ms": ms(percentile(bus["rtts"], 99)),
        "raw_rtt_p50_ms": ms(statistics.median(raw_rtts)),
        "raw_rtt_p99_ms": ms(percentile(raw_rtts, 99)),
        "max_loop_lag_ms": ms(max(bus["lags"])),
        "p99_loop_lag_ms": ms(percentile(bus["lags"], 99)),
        "max_gc_pause_ms": ms(max(bus["gc"], default=0.0)),
        "idle_max_loop_lag_ms": ms(max(bus["idle"])),
        "idle_p99_loop_lag_ms": ms(percentile(bus["idle"], 99)),
        "raw_in_thread_max_loop_lag_ms": ms(max(raw_lags)),
        "raw_in_thread_p99_loop_lag_ms": ms(percentile(raw_lags, 99)),
        "bus_loop_lag_over_5ms_share": round(sum(lag > 0.005 for lag in bus["lags"]) / len(bus["lags"]), 4),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu_budget": cpu_budget(cpu, len(bodies), decode_us, med["raw_consume"]),
        "all_rounds_per_s": {
            k: [round(x) for x in v]
            for k, v in (raw | {"bus_publish": bus["publish"], "bus_consume": bus["consume"]}).items()
        },
    }
    print(f"{args.messages} messages of {len(bodies[0])} bytes on pulsar-lite, median of {args.rounds} rounds")
    print(
        f"publish  raw {result['raw_publish_per_s']:>7}/s  raw+codec {result['raw_publish_with_codec_per_s']:>7}/s"
        f"  bus {result['bus_publish_per_s']:>7}/s  ratio {result['publish_ratio_to_raw']:.2f} "
        f"(to raw+codec {result['publish_ratio_to_raw_with_codec']:.2f})"
    )
    print(
        f"consume  raw {result['raw_consume_per_s']:>7}/s  raw+codec {result['raw_consume_with_codec_per_s']:>7}/s"
        f"  bus {result['bus_consume_per_s']:>7}/s  ratio {result['consume_ratio_to_raw']:.2f} "
        f"(to raw+codec {result['consume_ratio_to_raw_with_codec']:.2f})"
    )
    print(
        f"best rounds: publish ratio {result['best_round_publish_ratio_to_raw']:.2f}, "
        f"consume ratio {result['best_round_consume_ratio_to_raw']:.2f}"
    )
    print(
        f"round trip bus p50 {result['rtt_p50_ms']} ms p99 {result['rtt_p99_ms']} ms; "
        f"raw p50 {result['raw_rtt_p50_ms']} ms p99 {result['raw_rtt_p99_ms']} ms"
    )
    print(
        f"event loop lag max {result['max_loop_lag_ms']} ms, p99 {result['p99_loop_lag_ms']} ms "
        f"(idle loop, same process: max {result['idle_max_loop_lag_ms']} ms, "
        f"p99 {result['idle_p99_loop_lag_ms']} ms; raw client in a thread: max "
        f"{result['raw_in_thread_max_loop_lag_ms']} ms, p99 {result['raw_in_thread_p99_loop_lag_ms']} ms; "
        f"bus samples over 5 ms {result['bus_loop_lag_over_5ms_share']:.2%}; "
        f"longest GC pause {result['max_gc_pause_ms']} ms; "
        f"load average {result['load_average_1m']})"
    )
    budget = result["cpu_budget"]
    print(
        f"consume CPU: raw client {budget['raw_client_cores']} + broker {budget['raw_broker_cores']} cores "
        f"({budget['raw_client_us_per_message']} + {budget['raw_broker_us_per_message']} us/message); "
        f"decoding alone {budget['decode_us_per_message']} us/message; a bus at 90% of raw would need "
        f"{budget['cores_needed_at_90_percent']} of {budget['machine_cores']} cores; "
        f"bus used {budget['bus_client_cores']} + {budget['bus_broker_cores']}"
    )
    print(json.dumps(result))


def cpu_budget(cpu: dict[str, list[CpuMeter]], count: int, decode_us: float, raw_rate: float) -> dict[str, Any]:
    """Why `consume_ratio_to_raw` has a ceiling on a small machine: the cores the raw
    consume phase used (client and broker, median round), plus what decoding every
    message costs -- raw receive + acknowledge does not decode, a bus must -- at 90% of
    the raw rate, against the cores the machine has."""

    def median_of(name: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) / m.wall for m in cpu[name])

    def per_message_us(name: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in cpu[name]) / count * 1e6

    client_us, broker_us = per_message_us("raw_consume", "client"), per_message_us("raw_consume", "broker")
    return {
        "machine_cores": os.cpu_count(),
        "raw_client_cores": round(median_of("raw_consume", "client"), 2),
        "raw_broker_cores": round(median_of("raw_consume", "broker"), 2),
        "raw_client_us_per_message": round(client_us, 2),
        "raw_broker_us_per_message": round(broker_us, 2),
        "decode_us_per_message": round(decode_us, 2),
        "cores_needed_at_90_percent": round(0.9 * raw_rate * (client_us + broker_us + decode_us) / 1e6, 2),
        "bus_client_cores": round(median_of("bus_consume", "client"), 2),
        "bus_broker_cores": round(median_of("bus_consume", "broker"), 2),
    }


if __name__ == "__main__":
    main()
