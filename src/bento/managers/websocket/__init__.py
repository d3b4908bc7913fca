"""WebSocket broadcasting over Bento's channels (seed 004's WebSocketManager, WebSocketMessage,
ClientConnection); the FastAPI/Starlette endpoint is `bento.integrations.fastapi.serve_websocket`."""

from bento.managers.websocket.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_SLOW_CLIENT,
    ClientConnection,
    OverflowPolicy,
    WebSocketMessage,
)
from bento.managers.websocket.manager import WebSocketManager

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_SLOW_CLIENT",
    "ClientConnection",
    "OverflowPolicy",
    "WebSocketManager",
    "WebSocketMessage",
]
