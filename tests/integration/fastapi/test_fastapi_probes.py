"""/livez and /readyz beside /api/health, in a real application served by uvicorn: the
bus, the inbox and the health-check topic on a private redis-server; killing it makes the
application not ready (503, with the components that are down) while it stays alive."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi_support import PrivateRedis, Served

from bento.infrastructure.container import BentoContainer
from bento.integrations.fastapi import health_router, lifespan, metrics_router

pytestmark = pytest.mark.usefixtures("isolated")


def build_app(container: BentoContainer) -> FastAPI:
    app = FastAPI(lifespan=lifespan(container, start=("message_bus", "inbox", "health_checks")))
    app.include_router(health_router(timeout=2.0))
    app.include_router(metrics_router())
    return app


async def test_live_and_ready_then_not_ready_when_redis_is_killed(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENT__URL", private_redis.url)
    monkeypatch.setenv("INBOX__BACKEND", "redis")
    monkeypatch.setenv("INBOX__URL", private_redis.url)
    monkeypatch.setenv("HEALTH__ENABLED", "true")
    monkeypatch.setenv("HEALTH__INTERVAL", "0.2")
    monkeypatch.setenv("HEALTH__MAX_AGE", "1.0")
    container = BentoContainer()
    async with (
        Served(build_app(container)) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=10) as http,
    ):
        live = await http.get("/livez")
        assert (live.status_code, live.json()) == (200, {"alive": True})
        ready = await http.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200 and body["ready"] is True, body
        assert set(body["components"]) == {
            "event:default",
            "inbox",
            "health_check:publisher",
            "health_check:subscriber",
        }
        assert all(c["status"] == "up" for c in body["components"].values())
        assert (await http.get("/api/health")).status_code == 200
        scraped = (await http.get("/metrics")).text
        published = next(line for line in scraped.splitlines() if line.startswith("bento_bus_messages_published_total"))
        assert published.startswith('bento_bus_messages_published_total{bus="event:default"} ')
        assert float(published.split()[-1]) >= 1  # the health-check publisher's messages

        private_redis.kill()  # by PID

        down = await http.get("/readyz")
        body = down.json()
        assert down.status_code == 503 and body["ready"] is False
        assert body["components"]["event:default"]["status"] == "down"
        assert body["components"]["inbox"]["status"] == "down"
        # Health messages stop arriving: the subscriber checker follows within its max age.
        for _ in range(40):
            body = (await http.get("/readyz")).json()
            if body["components"]["health_check:subscriber"]["status"] == "down":
                break
            await asyncio.sleep(0.1)
        assert body["components"]["health_check:subscriber"]["status"] == "down"
        assert "max age" in body["components"]["health_check:subscriber"]["detail"]
        live = await http.get("/livez")
        assert live.status_code == 200  # not ready, still alive: restarting would not help
        assert (await http.get("/api/health")).status_code == 503


async def test_readyz_reports_the_runtime_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    container = BentoContainer()
    app = FastAPI(lifespan=lifespan(container, start=("message_bus", "runtime")))
    app.include_router(health_router(livez=None))
    async with Served(app) as served, httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        ready = await http.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200, body
        assert body["ready"] is True and body["lag"] == {"relay:bento-service.outbox": 0}
        assert (await http.get("/livez")).status_code == 404
