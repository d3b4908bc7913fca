"""FastAPI integration (extra: bento-ddd[fastapi]).

    container = OrdersContainer()
    app = FastAPI(lifespan=lifespan(container, modules=[__name__]))
    app.include_router(health_router())                  # GET /api/health
    app.include_router(metrics_router())                 # GET /metrics (bento-ddd[prometheus])

    @app.post("/orders")
    async def place(body: PlaceOrderBody, commands: CommandBusDep) -> dict[str, str]: ...

    @app.get("/sse/{user_id}")
    async def stream(user_id: str) -> StreamingResponse:
        return channel_stream(ChannelManager.get_instance("sse"), f"user:{user_id}")

    @app.websocket("/ws/{user_id}")
    async def ws(websocket: WebSocket, user_id: str) -> None:
        await serve_websocket(websocket, client_id=user_id)     # WebSocketManager, docs/cache-and-websockets.md

See docs/fastapi.md for `Depends(Provide[...])` wiring with dependency-injector.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from bento.application.errors import MissingExtraError

    raise MissingExtraError("FastAPI integration", "fastapi", "fastapi") from exc

from bento.integrations.fastapi.dependencies import (
    CommandBusDep,
    EventBusDep,
    MessageBusDep,
    QueryBusDep,
    container_of,
    get_command_bus,
    get_event_bus,
    get_message_bus,
    get_query_bus,
)
from bento.integrations.fastapi.errors import add_error_handlers
from bento.integrations.fastapi.health import health_router
from bento.integrations.fastapi.lifespan import lifespan
from bento.integrations.fastapi.metrics import metrics_router
from bento.integrations.fastapi.shutdown import shutting_down
from bento.integrations.fastapi.sse import channel_stream, sse_events, sse_response
from bento.integrations.fastapi.websocket import serve_websocket

__all__ = [
    "CommandBusDep",
    "EventBusDep",
    "MessageBusDep",
    "QueryBusDep",
    "add_error_handlers",
    "channel_stream",
    "container_of",
    "get_command_bus",
    "get_event_bus",
    "get_message_bus",
    "get_query_bus",
    "health_router",
    "lifespan",
    "metrics_router",
    "serve_websocket",
    "shutting_down",
    "sse_events",
    "sse_response",
]
