"""`metrics_router()`: GET /metrics, every bus's messaging metrics in the Prometheus text format.

The same exposition `bento run --http` serves (bento.infrastructure.prometheus); including
the router makes the process's buses report to it, and adds seed 003's counters of every bus
the application's container opened (`bento_bus_*`). Pass the runtime's `gauges`
(`container.runtime()`'s `.gauges`) to serve the lag, backlog and dead-letter gauges too,
sampled for each scrape. Needs `bento[prometheus]`.
"""

from __future__ import annotations

from dependency_injector import containers
from fastapi import APIRouter, Request
from fastapi.responses import Response

from bento.application.gauges import Gauges
from bento.infrastructure import prometheus


def metrics_router(
    container: containers.Container | None = None, *, path: str = "/metrics", gauges: Gauges | None = None
) -> APIRouter:
    """A router serving `/metrics`; installs the Prometheus recorder (and `gauges`) for this process.
    `container` defaults to the app's (see `lifespan`); without one, no bus counters."""
    recorder = prometheus.install()
    if gauges is not None:
        prometheus.install_gauges(gauges)
    router = APIRouter()

    @router.get(path, tags=["metrics"], summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        if gauges is not None:
            await gauges.refresh(max_age=1.0)
        watched = container or getattr(request.app.state, "bento_container", None)
        if watched is not None:
            recorder.watch(watched)
        return Response(recorder.exposition(), media_type=prometheus.CONTENT_TYPE)

    return router
