"""`metrics_router()`: GET /metrics, every bus's messaging metrics in the Prometheus text format.

The same exposition `bento run --http` serves (bento.infrastructure.prometheus); including
the router makes the process's buses report to it. Needs `bento[prometheus]`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from bento.infrastructure import prometheus


def metrics_router(*, path: str = "/metrics") -> APIRouter:
    """A router serving `/metrics`; installs the Prometheus recorder for this process."""
    recorder = prometheus.install()
    router = APIRouter()

    @router.get(path, tags=["metrics"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(recorder.exposition(), media_type=prometheus.CONTENT_TYPE)

    return router
