"""`health_router()`: GET /api/health, /livez and /readyz for a FastAPI application.

* `/api/health`: every opened component's health check. 200 with `{"status": "healthy",
  "components": {name: {status, latency_ms, detail, required}}}` when every required
  component answered, 503 with the same body otherwise.
* `/livez`: 200 while the process serves requests at all. A failing broker does not make a
  process dead (restarting it would not help), so liveness checks nothing else.
* `/readyz`: 200 when the application should get traffic: every required component is up
  and, when the container's runtime runs, no projection or outbox relay is behind; 503
  (with the reason) otherwise, and from the moment shutdown begins, so a load balancer
  drains the instance before it stops.
What is checked is described in `bento.infrastructure.health` (the same report `bento run
--http` and `bento health` give). Pass `livez=None` or `readyz=None` to leave one out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dependency_injector import containers
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bento.infrastructure.health import readiness
from bento.integrations.fastapi.dependencies import container_of
from bento.integrations.fastapi.shutdown import shutting_down
from bento.managers.health import HealthCheck, collect_health, discover


def health_router(
    container: containers.Container | None = None,
    *,
    path: str = "/api/health",
    livez: str | None = "/livez",
    readyz: str | None = "/readyz",
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> APIRouter:
    """A router with the health endpoints; `container` defaults to the app's (see `lifespan`)."""
    router = APIRouter()
    not_required = tuple(optional)
    extra = dict(checks or {})

    @router.get(path, tags=["health"], summary="Health of every component")
    async def health(request: Request) -> JSONResponse:
        report = await collect_health(
            container or container_of(request), timeout=timeout, optional=not_required, checks=extra
        )
        return JSONResponse(report.as_dict(), status_code=200 if report.healthy else 503)

    if livez is not None:

        @router.get(livez, tags=["health"], summary="Liveness: the process serves requests")
        async def live() -> JSONResponse:
            return JSONResponse({"alive": True})

    if readyz is not None:

        @router.get(readyz, tags=["health"], summary="Readiness: components up, nothing behind")
        async def ready(request: Request) -> JSONResponse:
            if shutting_down().is_set():
                return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
            target = container or container_of(request)
            found = {**discover(target), **extra}
            ok, body = await readiness(target, timeout=timeout, optional=not_required, checks=found)
            return JSONResponse(body, status_code=200 if ok else 503)

    return router
