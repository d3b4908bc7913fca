"""`health_router()`: GET /api/health aggregating every opened component's health check.

200 with `{"status": "healthy", "components": {name: {status, latency_ms, detail, required}}}`
when every required component answered, 503 with the same body otherwise. What is checked is
described in `bento.managers.health`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dependency_injector import containers
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bento.integrations.fastapi.dependencies import container_of
from bento.managers.health import HealthCheck, collect_health


def health_router(
    container: containers.Container | None = None,
    *,
    path: str = "/api/health",
    timeout: float = 5.0,
    optional: Iterable[str] = (),
    checks: Mapping[str, HealthCheck] | None = None,
) -> APIRouter:
    """A router with the health endpoint; `container` defaults to the app's (see `lifespan`)."""
    router = APIRouter()
    not_required = tuple(optional)
    extra = dict(checks or {})

    @router.get(path, tags=["health"], summary="Health of every component")
    async def health(request: Request) -> JSONResponse:
        report = await collect_health(
            container or container_of(request), timeout=timeout, optional=not_required, checks=extra
        )
        return JSONResponse(report.as_dict(), status_code=200 if report.healthy else 503)

    return router
