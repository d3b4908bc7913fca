"""Remote CommandBus.dispatch (request/reply) against the same pattern on the raw clients.

For RabbitMQ, NATS and Redis, on the machine's servers: a worker connection hosts an echo
handler and a caller connection dispatches to it. Measured: sequential round trips (p50/p99
over `--sequential` calls) and throughput with 100 calls in flight (`--messages` calls). The
raw equivalents: aio-pika with direct reply-to (`amq.rabbitmq.reply-to`), nats-py `request`
with a queue-group responder, redis-py streams with a consumer group and a reply stream per
caller. Both sides encode and decode JSON bodies inside the timing.

Run: `.venv/bin/python benchmarks/remote_commands.py [--messages N] [--rounds N] [--only rabbitmq,nats,redis]`.
Raw and dispatch are measured alternately, `--rounds` times (3), so each ratio compares two
neighbouring measurements on a shared machine. The last line printed is one JSON object with
every figure, including `<broker>_dispatch_ratio_to_raw` (throughput of dispatch / throughput
of raw, median over the rounds; target >= 0.8) and `<broker>_p50_ratio_to_raw` (sequential p50
of dispatch / of raw, median; target <= 1.3), and each round's ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ holds nats.py and redis.py: with this directory first on sys.path, `import nats`
# would import the benchmark instead of the client.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: E402
from contextlib import AbstractAsyncContextManager, asynccontextmanager  # noqa: E402
from typing import Any  # noqa: E402

from bento import Command, CommandHandler  # noqa: E402
from bento.application.ports.message_bus import MessageBus  # noqa: E402
from bento.application.remote import RemoteCommandBus, RequestReply  # noqa: E402

RABBITMQ_URL = os.environ.get("BENTO_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("BENTO_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("BENTO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_FLIGHT = 100
ROUND_TIMEOUT = 240.0
RUN = uuid.uuid4().hex[:8]


class Echo(Command, name=f"bench.echo.{RUN}"):
    n: int
    note: str


class EchoHandler(CommandHandler[Echo, int]):
    async def handle(self, command: Echo) -> int:
        return command.n


Call = Callable[[int], Awaitable[Any]]


async def measure(call: Call, sequential: int, messages: int) -> dict[str, float]:
    for n in range(20):  # warm up connections, consumers, caches
        await call(n)
    latencies = []
    for n in range(sequential):
        started = time.perf_counter()
        await call(n)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def limited(n: int) -> None:
        async with gate:
            await call(n)

    started = time.perf_counter()
    await asyncio.gather(*(limited(n) for n in range(messages)))
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "throughput": round(messages / elapsed, 1),
    }


# -- Bento --------------------------------------------------------------------------------
@asynccontextmanager
async def bento_call(open_bus: Callable[[], AbstractAsyncContextManager[MessageBus]]) -> AsyncIterator[Call]:
    worker = RemoteCommandBus(RequestReply(open_bus, service="bench-worker"))
    worker.register(EchoHandler())
    await worker.serve_all()
    caller = RemoteCommandBus(RequestReply(open_bus, service="bench-caller"))

    async def call(n: int) -> Any:
        return await caller.dispatch(Echo(n=n, note="hello"))

    try:
        yield call
    finally:
        await caller.link.close()
        await worker.link.close()


def rabbitmq_bus() -> AbstractAsyncContextManager[MessageBus]:
    from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings

    return RabbitMQMessageBus(RabbitMQSettings(url=RABBITMQ_URL, exchange_name=f"bench.{RUN}"))


def nats_bus() -> AbstractAsyncContextManager[MessageBus]:
    from bento.adapters.nats import NatsMessageBus, NatsSettings

    settings = NatsSettings(servers=[NATS_URL], stream_name=f"BENCH_{RUN}", subject_prefix=f"bench{RUN}")
    return NatsMessageBus(settings)


def redis_bus() -> AbstractAsyncContextManager[MessageBus]:
    from bento.adapters.redis import RedisMessageBus, RedisSettings

    # Handlers run concurrently, as the raw worker pipelines its replies.
    return RedisMessageBus(RedisSettings(url=REDIS_URL, key_prefix=f"bench:{RUN}:", concurrency=32))


# -- raw clients ----------------------------------------------------------------------------
@asynccontextmanager
async def raw_rabbitmq(*, durable: bool = False) -> AsyncIterator[Call]:
    """`durable=True`: the request on a durable queue, persistent, as the bus sends commands
    (reported beside the ratio, to show what the broker's persistence costs by itself)."""
    import aio_pika

    server = await aio_pika.connect_robust(RABBITMQ_URL)
    client = await aio_pika.connect_robust(RABBITMQ_URL)
    server_channel = await server.channel()
    await server_channel.set_qos(prefetch_count=IN_FLIGHT)
    name = f"bench.raw.{RUN}.{uuid.uuid4().hex[:6]}"
    queue = await server_channel.declare_queue(name, durable=durable, auto_delete=True)
    mode = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT

    async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        reply = json.dumps({"in_reply_to": body["id"], "result": body["n"]}).encode()
        await server_channel.default_exchange.publish(
            aio_pika.Message(reply, correlation_id=message.correlation_id), routing_key=message.reply_to or ""
        )
        await message.ack()

    await queue.consume(serve)
    channel = await client.channel()
    pending: dict[str, asyncio.Future[Any]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        future = pending.pop(body["in_reply_to"], None)
        if future is not None:
            future.set_result(body["result"])

    reply_queue = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_queue.consume(on_reply, no_ack=True)

    async def call(n: int) -> Any:
        ident = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        pending[ident] = future
        body = json.dumps({"id": ident, "n": n, "note": "hello"}).encode()
        await channel.default_exchange.publish(
            aio_pika.Message(body, reply_to="amq.rabbitmq.reply-to", correlation_id=ident, delivery_mode=mode),
            routing_key=queue.name,
        )
        return await asyncio.wait_for(future, 30)

    try:
        yield call
    finally:
        await client.close()
        await server.close()


@asynccontextmanager
async def raw_nats() -> AsyncIterator[Call]:
    import nats

    server = await nats.connect(NATS_URL)
    client = await nats.connect(NATS_URL)
    subject = f"bench.raw.{RUN}"

    async def serve(message: Any) -> None:
        body = json.loads(message.data)
        await message.respond(json.dumps({"in_reply_to": body["id"], "result": body["n"]}).encode())

    await server.subscribe(subject, queue="workers", cb=serve)
    await server.flush()

    async def call(n: int) -> Any:
        body = json.dumps({"id": str(uuid.uuid4()), "n": n, "note": "hello"}).encode()
        reply = await client.request(subject, body, timeout=30)
        return json.loads(reply.data)["result"]

    try:
        yield call
    finally:
        await client.close()
        await server.close()


@asynccontextmanager
async def raw_redis() -> AsyncIterator[Call]:
    import redis.asyncio as redis

    server, client = redis.Redis.from_url(REDIS_URL), redis.Redis.from_url(REDIS_URL)
    reader = redis.Redis.from_url(REDIS_URL)
    round_id = uuid.uuid4().hex[:8]  # a stream pair per round: nothing of an earlier round is read
    requests, replies = f"bench:raw:{RUN}:{round_id}:requests", f"bench:raw:{RUN}:{round_id}:replies"
    await server.xgroup_create(requests, "workers", id="$", mkstream=True)
    pending: dict[str, asyncio.Future[Any]] = {}

    async def serve() -> None:
        while True:
            batches = await server.xreadgroup("workers", "w1", {requests: ">"}, count=IN_FLIGHT, block=1000)
            for _, entries in batches or []:
                pipe = server.pipeline(transaction=False)
                for entry_id, fields in entries:
                    body = json.loads(fields[b"body"])
                    reply = json.dumps({"in_reply_to": body["id"], "result": body["n"]})
                    pipe.xadd(fields[b"reply_to"].decode(), {"body": reply})
                    pipe.xack(requests, "workers", entry_id)
                await pipe.execute()

    async def receive() -> None:
        last = "0"  # the stream is new: read everything (a "$" would miss replies between reads)
        while True:
            batches = await reader.xread({replies: last}, count=IN_FLIGHT, block=1000)
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    last = entry_id
                    body = json.loads(fields[b"body"])
                    future = pending.pop(body["in_reply_to"], None)
                    if future is not None:
                        future.set_result(body["result"])

    tasks = [asyncio.create_task(serve()), asyncio.create_task(receive())]
    await asyncio.sleep(0.2)

    async def call(n: int) -> Any:
        for task in tasks:
            if task.done():  # a dead loop would leave every call waiting out its timeout
                raise RuntimeError(f"raw Redis loop ended: {task.exception()!r}")
        ident = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        pending[ident] = future
        body = json.dumps({"id": ident, "n": n, "note": "hello"})
        await client.xadd(requests, {"body": body, "reply_to": replies})
        return await asyncio.wait_for(future, 30)

    try:
        yield call
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.delete(requests, replies)
        for connection in (server, client, reader):
            await connection.aclose()


BROKERS: dict[str, tuple[Callable[[], AbstractAsyncContextManager[MessageBus]], Any]] = {
    "rabbitmq": (rabbitmq_bus, raw_rabbitmq),
    "nats": (nats_bus, raw_nats),
    "redis": (redis_bus, raw_redis),
}


@asynccontextmanager
async def raw_rabbitmq_durable() -> AsyncIterator[Call]:
    async with raw_rabbitmq(durable=True) as call:
        yield call


#: Raw variants measured beside the raw reference in each round (reported, not in the ratio).
EXTRA_RAW: dict[str, Callable[[], AbstractAsyncContextManager[Call]]] = {"rabbitmq": raw_rabbitmq_durable}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="raw and dispatch measured alternately, this often")
    parser.add_argument("--only", default=",".join(BROKERS))
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for broker in args.only.split(","):
        open_bus, raw = BROKERS[broker]
        rounds: list[tuple[dict[str, float], dict[str, float]]] = []
        extra: list[dict[str, float]] = []
        for _ in range(args.rounds):
            # Alternating rounds on this shared machine: each ratio compares neighbours in time.
            try:
                async with asyncio.timeout(ROUND_TIMEOUT):
                    async with raw() as call:
                        raw_figures = await measure(call, args.sequential, args.messages)
                    async with bento_call(open_bus) as call:
                        bento_figures = await measure(call, args.sequential, args.messages)
                    if broker in EXTRA_RAW:
                        async with EXTRA_RAW[broker]() as call:
                            durable_figures = await measure(call, args.sequential, args.messages)
                        print(f"{broker:<9} raw durable {durable_figures}")
                        extra.append(durable_figures)
            except TimeoutError:
                print(f"{broker:<9} a round did not finish within {ROUND_TIMEOUT} s; left out")
                continue
            print(f"{broker:<9} raw   {raw_figures}")
            print(f"{broker:<9} bento {bento_figures}")
            rounds.append((raw_figures, bento_figures))
        if not rounds:
            continue
        throughput = [b["throughput"] / r["throughput"] for r, b in rounds]
        p50 = [b["p50_ms"] / r["p50_ms"] for r, b in rounds]
        figures[f"{broker}_raw"] = [r for r, _ in rounds]
        figures[f"{broker}_dispatch"] = [b for _, b in rounds]
        figures[f"{broker}_dispatch_ratio_to_raw_rounds"] = [round(x, 3) for x in throughput]
        figures[f"{broker}_p50_ratio_to_raw_rounds"] = [round(x, 3) for x in p50]
        if extra:  # the same rounds, against a raw client that also persists its requests
            figures[f"{broker}_raw_durable"] = extra
            figures[f"{broker}_dispatch_ratio_to_raw_durable"] = round(
                statistics.median(b["throughput"] / d["throughput"] for (_, b), d in zip(rounds, extra, strict=False)),
                3,
            )
            figures[f"{broker}_p50_ratio_to_raw_durable"] = round(
                statistics.median(b["p50_ms"] / d["p50_ms"] for (_, b), d in zip(rounds, extra, strict=False)), 3
            )
        figures[f"{broker}_dispatch_ratio_to_raw"] = round(statistics.median(throughput), 3)
        figures[f"{broker}_p50_ratio_to_raw"] = round(statistics.median(p50), 3)
        print(
            f"{broker:<9} median of {len(rounds)} rounds: throughput {figures[f'{broker}_dispatch_ratio_to_raw']} "
            f"of raw, p50 {figures[f'{broker}_p50_ratio_to_raw']}x raw"
        )
    if "redis" in args.only.split(","):
        await _delete_redis_keys()
    print(json.dumps(figures))


async def _delete_redis_keys() -> None:
    """The run's streams and registry (the bus's `bench:<run>:` prefix and the raw client's)."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"bench:{RUN}:*", f"bench:raw:{RUN}:*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
