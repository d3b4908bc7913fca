"""The FastAPI integration through a real ASGI server (uvicorn on a loopback port) and httpx:
SSE received in order, /api/health 200, and 503 once a component's server is unreachable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_support import PrivateRedis, Served

from bento.application.buses import CommandBus
from bento.application.handlers import CommandHandler
from bento.application.messages import Command
from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import CommandBusDep, channel_stream, health_router, lifespan
from bento.managers import runtime
from bento.managers.channel import ChannelManager
from bento.managers.clients import RedisClient

pytestmark = pytest.mark.usefixtures("isolated")


class Notify(Command):
    user_id: str
    message: str


class NotifyHandler(CommandHandler[Notify, str]):
    """Publishes the notification on the user's SSE channel (seed 000's /notify route)."""

    async def handle(self, command: Notify) -> str:
        await ChannelManager.get_instance("sse").publish(f"user:{command.user_id}", {"message": command.message})
        return "sent"


def build_app(container: BentoContainer, redis_url: str) -> FastAPI:
    async def open_components() -> None:
        # 获取命名实例 (在 app 启动时已初始化)
        await ChannelManager.get_instance("sse").initialize(backend="memory")
        cache = await RedisClient.get_instance("cache").configure(url=redis_url, socket_timeout=1).initialize()
        await ChannelManager.get_instance("live").initialize(backend="redis", redis_client=cache)
        container.command_bus().register(NotifyHandler())

    app = FastAPI(lifespan=lifespan(container, on_startup=[open_components]))
    app.include_router(health_router(timeout=2.0))

    @app.get("/sse/{user_id}")
    async def sse_stream(user_id: str) -> StreamingResponse:
        return channel_stream(ChannelManager.get_instance("sse"), f"user:{user_id}", keepalive=1.0)

    @app.get("/live/{pattern}")
    async def live_stream(pattern: str) -> StreamingResponse:
        return channel_stream(ChannelManager.get_instance("live"), pattern, pattern=True)

    @app.post("/notify/{user_id}")
    async def send_notification(user_id: str, message: str, commands: CommandBusDep) -> dict[str, str]:
        return {"status": await commands.dispatch(Notify(user_id=user_id, message=message))}

    return app


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parse an SSE stream into frames (`{"id", "event", "data"}`; comments as `{"comment"}`)."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(": ")
            frame[field] = frame[field] + "\n" + value if field in frame else value


async def test_sse_stream_is_received_in_order(private_redis: PrivateRedis) -> None:
    container = BentoContainer()
    async with (
        Served(build_app(container, private_redis.url)) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as http,
        http.stream("GET", "/sse/123") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        assert await anext(stream) == {"comment": "connected"}  # listening: what follows is received
        for n in range(50):
            sent = await http.post("/notify/123", params={"message": f"m{n}"})
            assert sent.json() == {"status": "sent"}
        received: list[str] = []
        async with asyncio.timeout(10):
            async for frame in stream:
                if "data" in frame:
                    received.append(json.loads(frame["data"])["message"])
                if len(received) == 50:
                    break
        assert received == [f"m{n}" for n in range(50)]
    assert not ChannelManager.get_instance("sse").initialized  # the lifespan cleaned up


async def test_psubscribe_sse_over_redis(private_redis: PrivateRedis) -> None:
    container = BentoContainer()
    async with (
        Served(build_app(container, private_redis.url)) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as http,
        http.stream("GET", "/live/space:7:*") as response,
    ):
        stream = frames(response)
        assert await anext(stream) == {"comment": "connected"}
        live = ChannelManager.get_instance("live")
        await live.publish("space:7:file_analyzed", {"n": 1}, event="file_analyzed")
        await live.publish("space:8:file_analyzed", {"n": 2}, event="file_analyzed")
        await live.publish("space:7:comment_added", {"n": 3}, event="comment_added")
        got = []
        async with asyncio.timeout(10):
            async for frame in stream:
                if "data" in frame:
                    got.append((frame["event"], json.loads(frame["data"])["n"]))
                if len(got) == 2:
                    break
        assert got == [("file_analyzed", 1), ("comment_added", 3)]


async def test_health_is_200_then_503_when_redis_is_killed(private_redis: PrivateRedis) -> None:
    container = BentoContainer()
    async with (
        Served(build_app(container, private_redis.url)) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as http,
    ):
        healthy = await http.get("/api/health")
        body = healthy.json()
        assert healthy.status_code == 200 and body["status"] == "healthy"
        assert set(body["components"]) == {"event:default", "channel:sse", "channel:live", "redis:cache"}
        assert all(c["status"] == "up" for c in body["components"].values())
        assert body["components"]["redis:cache"]["latency_ms"] > 0

        private_redis.kill()  # by PID

        down = await http.get("/api/health")
        body = down.json()
        assert down.status_code == 503 and body["status"] == "unhealthy"
        assert body["components"]["redis:cache"]["status"] == "down"
        assert body["components"]["channel:live"]["status"] == "down"
        assert body["components"]["redis:cache"]["detail"]
        assert body["components"]["channel:sse"]["status"] == "up"
        assert body["components"]["event:default"]["status"] == "up"


async def test_lifespan_shutdown_closes_what_it_opened(private_redis: PrivateRedis) -> None:
    container = BentoContainer()
    async with Served(build_app(container, private_redis.url)):
        cache = RedisClient.get_instance("cache")
        bus: CommandBus = container.command_bus()
        assert cache.initialized and bus.handles(Notify)
    assert not cache.initialized and not ChannelManager.get_instance("live").initialized


def seed_000_router() -> APIRouter:
    """Seed 000's "FastAPI SSE 示例", as written (ChannelManager names, json.dumps(message))."""
    router = APIRouter()

    # 获取命名实例 (在 app 启动时已初始化)
    sse_channel = ChannelManager.get_instance("sse")

    @router.get("/sse/{user_id}")
    async def sse_stream(user_id: str) -> StreamingResponse:
        async def event_generator() -> AsyncIterator[str]:
            # user_id 作为 Topic, 区分不同用户的消息流
            async for message in sse_channel.subscribe(f"user:{user_id}"):
                yield f"data: {json.dumps(message)}\n\n"

        return StreamingResponse(event_generator(), media_type="text/event-stream")

    @router.post("/notify/{user_id}")
    async def send_notification(user_id: str, message: str) -> dict[str, str]:
        await sse_channel.publish(f"user:{user_id}", {"message": message})
        return {"status": "sent"}

    return router


async def test_seed_000_fastapi_sse_example() -> None:
    container = BentoContainer()
    runtime.use_container(container)
    await ChannelManager.get_instance("sse").initialize(backend="memory")
    app = FastAPI(lifespan=lifespan(container))
    app.include_router(seed_000_router())
    async with (
        Served(app) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as http,
        http.stream("GET", "/sse/42") as response,
    ):
        lines = response.aiter_lines()
        # The seed's generator sends nothing until the first message: publish until one arrives.
        first = asyncio.ensure_future(anext(lines))
        for n in range(100):
            await http.post("/notify/42", params={"message": f"hello {n}"})
            done, _ = await asyncio.wait({first}, timeout=0.05)
            if done:
                break
        line = await asyncio.wait_for(first, 5)
        sent = json.loads(line.removeprefix("data: "))
        assert sent["channel"] == "user:42" and sent["data"]["message"].startswith("hello ")
