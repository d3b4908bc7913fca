"""RabbitMQMessageBus against raw aio-pika on the machine's RabbitMQ, with the same guarantees.

Both sides: persistent messages, publisher confirms, pipelined publishing in windows of
1,000, manual ack after the handler, the same prefetch, ~1 KB bodies. Each side serializes
inside the timing (raw: json.dumps of the same event data; bus: its envelope codec) and
parses on receipt (raw: json.loads; bus: decode into the event class). Publishing and
consuming are timed separately: messages are published into a bound, idle queue, then
consumed from it. Raw and bus alternate every `--slice` messages, in both phases, so both
meet the same moments of a shared, noisy machine; while one side consumes, the other holds
its prefetched messages at a gate. Then round-trip latency (publish → handler) for 1,000
single messages. Run: `.venv/bin/python benchmarks/rabbitmq.py [--messages N]`. The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid

import aio_pika

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent, make_event

URL = os.environ.get("BENTO_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
WINDOW = 1000
PREFETCH = 256
EXCHANGE = "bento.bench"


def events(count: int) -> list[ContractEvent]:
    blob = "x" * 780  # envelope + ids + metadata bring the body to ~1 KB
    return [make_event(n, key=f"k{n % 64}", blob=blob) for n in range(count)]


class Counter:
    """Counts handled messages and wakes the timer when a target is reached."""

    def __init__(self) -> None:
        self.handled, self.target, self.reached = 0, 0, asyncio.Event()
        self.turn = asyncio.Event()  # handlers wait here while the other side has its turn

    def expect(self, target: int) -> None:
        self.target = target
        self.reached = asyncio.Event()
        if self.handled >= target:
            self.reached.set()

    def hit(self) -> None:
        self.handled += 1
        if self.handled >= self.target:
            self.reached.set()


class RawSide:
    """Plain aio-pika: Message objects, exchange.publish pipelined with gather, ack in the callback."""

    def __init__(self) -> None:
        self.name = f"bench.raw.{uuid.uuid4().hex[:8]}"
        self.counter = Counter()

    async def setup(self) -> None:
        self.connection = await aio_pika.connect_robust(URL)
        channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        queue = await channel.declare_queue(self.name, durable=True)
        await queue.bind(self.exchange, routing_key=self.name)

    async def publish(self, payloads: list[dict[str, object]]) -> None:
        # A raw producer serializes its payload too (json.dumps of the same data the bus encodes).
        await asyncio.gather(
            *(
                self.exchange.publish(
                    aio_pika.Message(
                        json.dumps(payload).encode(),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                    ),
                    routing_key=self.name,
                    mandatory=False,
                )
                for payload in payloads
            )
        )

    async def start_consuming(self) -> None:
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(self.name)
        counter = self.counter

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await counter.turn.wait()
            json.loads(message.body)  # a raw consumer parses its payload too
            await message.ack()
            counter.hit()

        await queue.consume(on_message)

    async def teardown(self) -> None:
        async with self.connection:
            channel = await self.connection.channel()
            await channel.queue_delete(self.name)


class BusSide:
    """RabbitMQMessageBus: publish_batch, and a group subscription per consume slice."""

    def __init__(self) -> None:
        self.topic = f"bench.bus.{uuid.uuid4().hex[:8]}"
        self.counter = Counter()
        self.bus = RabbitMQMessageBus(
            RabbitMQSettings(
                url=URL,
                exchange_name=EXCHANGE,
                prefetch_count=PREFETCH,
                publish_window=WINDOW,
                connection_name="bento-bench",
            )
        )

    async def handler(self, event: DomainEvent) -> None:
        await self.counter.turn.wait()
        self.counter.hit()

    async def setup(self) -> None:
        await self.bus.start()
        declared = await self.bus.subscribe(self.topic, self.handler, group="bench")  # queue + binding
        self.queues = (declared.queue_name, declared.dead_letter_queue)
        await declared.cancel()

    async def publish(self, messages: list[ContractEvent]) -> None:
        await self.bus.publish_batch(self.topic, messages)

    async def start_consuming(self) -> None:
        await self.bus.subscribe(self.topic, self.handler, group="bench")

    async def teardown(self) -> None:
        await self.bus.close()
        await _delete_queues(*self.queues)


async def throughput(sent: list[ContractEvent], payloads: list[dict[str, object]], slice_size: int) -> dict[str, float]:
    """Alternate raw and bus slice by slice, so both see the same moments of a noisy machine."""
    raw, bus = RawSide(), BusSide()
    await raw.setup()
    await bus.setup()
    count = len(sent)
    timings = {"raw_publish": 0.0, "bus_publish": 0.0, "raw_consume": 0.0, "bus_consume": 0.0}
    for start in range(0, count, slice_size):
        for side in ("raw", "bus") if (start // slice_size) % 2 == 0 else ("bus", "raw"):
            for window in range(start, min(start + slice_size, count), WINDOW):
                stop = min(window + WINDOW, start + slice_size, count)
                began = time.perf_counter()
                if side == "raw":
                    await raw.publish(payloads[window:stop])
                else:
                    await bus.publish(sent[window:stop])
                timings[f"{side}_publish"] += time.perf_counter() - began
    # Both consumers stay subscribed; they take turns of `slice_size` messages (the idle one holds
    # its prefetched messages at a gate), so neither pays for re-subscribing inside the timing.
    await raw.start_consuming()
    await bus.start_consuming()
    for start in range(0, count, slice_size):
        target = min(start + slice_size, count)
        for side in ("raw", "bus") if (start // slice_size) % 2 == 0 else ("bus", "raw"):
            counter = raw.counter if side == "raw" else bus.counter
            counter.expect(target)
            began = time.perf_counter()
            counter.turn.set()
            await counter.reached.wait()
            timings[f"{side}_consume"] += time.perf_counter() - began
            counter.turn.clear()
    await raw.teardown()
    await bus.teardown()
    return {name: count / seconds for name, seconds in timings.items()}


async def _delete_queues(*names: str) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


async def latency(samples: int) -> tuple[list[float], list[float]]:
    """Round trip publish → handler, one message at a time, for the bus and for raw aio-pika."""
    settings = RabbitMQSettings(
        url=URL,
        exchange_name=EXCHANGE,
        prefetch_count=PREFETCH,
        connection_name="bento-bench",
    )
    topic = f"bench.lat.{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[None] = loop.create_future()

    async def handler(event: DomainEvent) -> None:
        if not arrived.done():
            arrived.set_result(None)

    bus_ms: list[float] = []
    async with RabbitMQMessageBus(settings) as bus:
        subscription = await bus.subscribe(topic, handler, group="lat")
        for n in range(samples):
            arrived = loop.create_future()
            started = time.perf_counter()
            await bus.publish(topic, make_event(n))
            await arrived
            bus_ms.append((time.perf_counter() - started) * 1000)
        await subscription.cancel()
    await _delete_queues(subscription.queue_name, subscription.dead_letter_queue)

    raw_ms: list[float] = []
    codec = JsonCodec()
    connection = await aio_pika.connect_robust(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(EXCHANGE, "topic", durable=True)
        queue = await channel.declare_queue(f"bench.rawlat.{uuid.uuid4().hex[:8]}", durable=True)
        await queue.bind(exchange, routing_key=queue.name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            codec.decode(message.body)
            await message.ack()
            if not arrived.done():
                arrived.set_result(None)

        tag = await queue.consume(on_message)
        for n in range(samples):
            arrived = loop.create_future()
            body = codec.encode(make_event(n))
            started = time.perf_counter()
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.name,
                mandatory=False,
            )
            await arrived
            raw_ms.append((time.perf_counter() - started) * 1000)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    return bus_ms, raw_ms


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--slice", type=int, default=2000, help="messages per alternation slice")
    parser.add_argument("--latency-samples", type=int, default=1000)
    args = parser.parse_args()

    sent = events(args.messages)
    codec = JsonCodec()
    bodies = [codec.encode(m) for m in sent]
    body_size = statistics.mean(len(b) for b in bodies)
    print(
        f"{args.messages} messages of ~{body_size:.0f} B, window {WINDOW}, prefetch {PREFETCH}, "
        f"persistent + confirms + manual ack, raw and bus alternating every {args.slice} messages"
    )
    payloads = [m.model_dump(mode="json") for m in sent]
    rates = await throughput(sent, payloads, args.slice)
    raw_pub, bus_pub = rates["raw_publish"], rates["bus_publish"]
    raw_con, bus_con = rates["raw_consume"], rates["bus_consume"]
    bus_ms, raw_ms = await latency(args.latency_samples)
    figures = {
        "messages": args.messages,
        "body_bytes": round(body_size),
        "raw_publish_msgs_per_s": round(raw_pub),
        "bus_publish_msgs_per_s": round(bus_pub),
        "publish_ratio_to_raw": round(bus_pub / raw_pub, 3),
        "raw_consume_msgs_per_s": round(raw_con),
        "bus_consume_msgs_per_s": round(bus_con),
        "consume_ratio_to_raw": round(bus_con / raw_con, 3),
        "bus_latency_p50_ms": round(percentile(bus_ms, 0.5), 3),
        "bus_latency_p99_ms": round(percentile(bus_ms, 0.99), 3),
        "raw_latency_p50_ms": round(percentile(raw_ms, 0.5), 3),
        "raw_latency_p99_ms": round(percentile(raw_ms, 0.99), 3),
    }
    print(f"publish: bus {bus_pub:.0f}/s vs raw {raw_pub:.0f}/s = {figures['publish_ratio_to_raw']:.0%}")
    print(f"consume: bus {bus_con:.0f}/s vs raw {raw_con:.0f}/s = {figures['consume_ratio_to_raw']:.0%}")
    print(
        f"round trip ({args.latency_samples} single messages): bus p50 {figures['bus_latency_p50_ms']} ms "
        f"p99 {figures['bus_latency_p99_ms']} ms; raw p50 {figures['raw_latency_p50_ms']} ms "
        f"p99 {figures['raw_latency_p99_ms']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
