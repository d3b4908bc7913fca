"""FastAPI integration without network: lifespan, Depends helpers, Provide wiring, health, SSE frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide, inject
from fastapi import Depends, FastAPI

from bento.application.buses import CommandBus
from bento.application.handlers import CommandHandler
from bento.application.messages import Command
from bento.application.ports.capabilities import HealthStatus
from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import (
    CommandBusDep,
    MessageBusDep,
    channel_stream,
    health_router,
    lifespan,
    sse_events,
)
from bento.managers import runtime
from bento.managers.channel import ChannelManager


class Greet(Command):
    name: str


class GreetHandler(CommandHandler[Greet, str]):
    async def handle(self, command: Greet) -> str:
        return f"hello {command.name}"


class GreeterContainer(BentoContainer):
    greet = providers.Singleton(GreetHandler)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)
    runtime.reset_container()


@inject
async def greet_wired(
    name: str,
    commands: CommandBus = Depends(Provide[BentoContainer.command_bus]),  # noqa: B008 - FastAPI's idiom
) -> dict[str, str]:
    return {"reply": await commands.dispatch(Greet(name=name))}


def build_app(container: BentoContainer, *, checks: dict[str, object] | None = None) -> FastAPI:
    async def open_sse() -> None:
        await ChannelManager.get_instance("sse").initialize(backend="memory")

    app = FastAPI(lifespan=lifespan(container, modules=[__name__], on_startup=[open_sse]))
    app.include_router(health_router(checks=checks))  # type: ignore[arg-type]

    @app.post("/greet/{name}")
    async def greet(name: str, commands: CommandBusDep, bus: MessageBusDep) -> dict[str, str]:
        assert bus is await container.message_bus()  # type: ignore[misc]
        return {"reply": await commands.dispatch(Greet(name=name))}

    app.add_api_route("/wired/{name}", greet_wired, methods=["POST"])

    @app.get("/sse/{channel}")
    async def sse(channel: str) -> object:
        return channel_stream(ChannelManager.get_instance("sse"), channel)

    return app


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, GreeterContainer]]:
    container = GreeterContainer()
    app = build_app(container)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http, container
    assert not ChannelManager.get_instance("sse").initialized  # cleaned up at shutdown


async def test_lifespan_registers_handlers_and_depends_resolve_the_buses(
    client: tuple[httpx.AsyncClient, GreeterContainer],
) -> None:
    http, container = client
    assert runtime.get_container() is container
    response = await http.post("/greet/ann")
    assert response.status_code == 200 and response.json() == {"reply": "hello ann"}


async def test_provide_wiring_works_in_routes(client: tuple[httpx.AsyncClient, GreeterContainer]) -> None:
    http, _ = client
    response = await http.post("/wired/bob")
    assert response.json() == {"reply": "hello bob"}


async def test_health_lists_opened_components(client: tuple[httpx.AsyncClient, GreeterContainer]) -> None:
    http, _ = client
    response = await http.get("/api/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "healthy"
    assert set(body["components"]) == {"event:default", "channel:sse"}
    assert all(c["status"] == "up" and c["latency_ms"] >= 0 for c in body["components"].values())


async def test_health_is_503_when_a_required_check_fails() -> None:
    async def down() -> HealthStatus:
        return HealthStatus(False, "search", 1.0, "connection refused")

    container = GreeterContainer()
    app = build_app(container, checks={"search": down})
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    async with app.router.lifespan_context(app), http:
        response = await http.get("/api/health")
    assert response.status_code == 503
    assert response.json()["components"]["search"] == {
        "healthy": False,
        "latency_ms": 1.0,
        "detail": "connection refused",
        "required": True,
        "status": "down",
    }


async def test_sse_frames_open_keep_alive_and_carry_messages() -> None:
    container = GreeterContainer()
    runtime.use_container(container)
    sse = await ChannelManager.get_instance("sse").initialize(backend="memory")
    frames = sse_events(sse.subscribe("user:1"), keepalive=0.05)
    assert await anext(frames) == ": connected\n\n"
    assert await anext(frames) == ": keep-alive\n\n"
    await sse.publish("user:1", {"n": 1}, event="notice")
    frame = await anext(frames)
    assert "event: notice\n" in frame and frame.endswith('data: {"n":1}\n\n')
    await frames.aclose()
    await runtime.shutdown(container)


# -- errors as HTTP answers, and SSE streams that end at shutdown ---------------------------------
async def test_domain_errors_become_problem_documents() -> None:
    from bento.application.errors import ConcurrencyError
    from bento.application.repository import AggregateNotFoundError
    from bento.domain.errors import DomainError
    from bento.integrations.fastapi import add_error_handlers

    app = FastAPI()
    add_error_handlers(app)
    raised: dict[str, Exception] = {
        "conflict": ConcurrencyError("Order-1", 0, 2),
        "missing": AggregateNotFoundError("Order", "o-9", "Order-o-9"),
        "rule": DomainError("order o-1 is paid; only placed orders can be paid"),
    }

    @app.post("/{case}")
    async def fail(case: str) -> None:
        raise raised[case]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answers = {case: await client.post(f"/{case}") for case in raised}
    assert {case: r.status_code for case, r in answers.items()} == {"conflict": 409, "missing": 404, "rule": 422}
    body = answers["conflict"].json()
    assert answers["conflict"].headers["content-type"] == "application/problem+json"
    assert body["status"] == 409 and body["error"] == "ConcurrencyError" and "Order-1" in body["detail"]
    assert answers["missing"].json()["title"] == "Not Found"


async def test_sse_stream_ends_when_the_server_begins_to_shut_down() -> None:
    import asyncio
    import os
    import signal

    from bento.integrations.fastapi.shutdown import watch_exit_signals

    container = GreeterContainer()
    runtime.use_container(container)
    sse = await ChannelManager.get_instance("sse").initialize(backend="memory")
    previous_calls: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: previous_calls.append(signum))  # "uvicorn's"
    try:
        with watch_exit_signals():
            frames = sse_events(sse.subscribe("user:1"), keepalive=30.0)
            assert await anext(frames) == ": connected\n\n"
            pending = asyncio.ensure_future(anext(frames))
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)  # what Ctrl-C / a stop does to the server
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(pending, timeout=2.0)  # not the 30 s keep-alive, not the client's timeout
        assert previous_calls == [signal.SIGTERM]  # the server's own handler still ran
    finally:
        signal.signal(signal.SIGTERM, before)
        await runtime.shutdown(container)
