"""`metrics_router()`: GET /metrics, every bus's messaging metrics in the Prometheus text format.

The same exposition `bento run --http` serves (bento.infrastructure.prometheus); including
the router makes the process's buses report to it. Pass the runtime's `gauges`
(`container.runtime()`'s `.gauges`) to serve the lag, backlog and dead-letter gauges too,
sampled for each scrape. Needs `bento[prometheus]`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from bento.application.gauges import Gauges
from bento.infrastructure import prometheus


def metrics_router(*, path: str = "/metrics", gauges: Gauges | None = None) -> APIRouter:
    """A router serving `/metrics`; installs the Prometheus recorder (and `gauges`) for this process."""
    recorder = prometheus.install()
    if gauges is not None:
        prometheus.install_gauges(gauges)
    router = APIRouter()

    @router.get(path, tags=["metrics"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        if gauges is not None:
            await gauges.refresh(max_age=1.0)
        return Response(recorder.exposition(), media_type=prometheus.CONTENT_TYPE)

    return router
