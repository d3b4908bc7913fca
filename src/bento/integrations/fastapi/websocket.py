"""The FastAPI/Starlette WebSocket endpoint of WebSocketManager.

    @app.websocket("/ws/{user_id}")
    async def ws(websocket: WebSocket, user_id: str) -> None:
        await serve_websocket(websocket, WebSocketManager.get_instance(), client_id=user_id, topics=[f"user:{user_id}"])

`serve_websocket` accepts the socket, registers a ClientConnection, and runs two tasks until
either side ends: a writer that sends the client's queued messages in order, and a reader that
handles what the client sends. A client may send `{"type": "subscribe", "data": {"topic": …}}`
and `{"type": "unsubscribe", …}`; any other message becomes a WebSocketMessage passed to
`on_message(client, message)` (ignored without one; text that is not such JSON is ignored and
logged). When the manager closes the client (its queue overflowed under the `disconnect`
policy, or the server shuts down) the socket is closed with that code, waiting at most
`close_timeout` seconds for a client that does not read. Whatever ends it, the client is
unregistered and its queue freed before this returns the ClientConnection (final counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from pydantic import ValidationError
from starlette.websockets import WebSocket

from bento.managers.websocket import ClientConnection, WebSocketManager, WebSocketMessage

logger = logging.getLogger(__name__)

OnMessage = Callable[[ClientConnection, WebSocketMessage], Awaitable[None]]


async def serve_websocket(
    websocket: WebSocket,
    manager: WebSocketManager | None = None,
    *,
    client_id: str | None = None,
    topics: Iterable[str] = (),
    on_message: OnMessage | None = None,
    close_timeout: float = 1.0,
) -> ClientConnection:
    """See the module docstring."""
    manager = manager or WebSocketManager.get_instance()
    await manager.initialize()
    await websocket.accept()
    client = manager.connect(client_id, topics)
    writer = asyncio.create_task(_write(websocket, client))
    reader = asyncio.create_task(_read(websocket, manager, client, on_message))
    closing = asyncio.create_task(client.closing.wait())
    try:
        await asyncio.wait({writer, reader, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        manager.disconnect(client)  # first: nothing below may skip it
        for task in (writer, reader, closing):
            task.cancel()
        # asyncio.wait, not gather: if this task is cancelled meanwhile (a server or a task group
        # stopping it), its own CancelledError propagates, not one gather made from a child's,
        # which anyio's cancel scopes would not recognise as theirs.
        await asyncio.wait({writer, reader, closing})
    if reader.cancelled():  # the server ended it (policy, shutdown, a failed send): say why
        with contextlib.suppress(Exception):
            async with asyncio.timeout(close_timeout):
                await websocket.close(client.close_code or 1000, (client.close_reason or "")[:120])
    return client


async def _write(websocket: WebSocket, client: ClientConnection) -> None:
    while (text := await client.next()) is not None:
        try:
            await websocket.send_text(text)
        except Exception:  # the client went away: the reader sees the disconnect
            return
        client.sent += 1


async def _read(
    websocket: WebSocket, manager: WebSocketManager, client: ClientConnection, on_message: OnMessage | None
) -> None:
    while True:
        received = await websocket.receive()
        if received["type"] == "websocket.disconnect":
            return
        text = received.get("text")
        if text is None:
            continue
        try:
            message = WebSocketMessage.model_validate_json(text)
        except ValidationError:
            logger.debug("ignored a WebSocket message from %r that is not {type, data} JSON", client.id[:64])
            continue
        topic = message.data.get("topic") if isinstance(message.data, dict) else None
        if message.type == "subscribe" and isinstance(topic, str):
            manager.subscribe(client, topic)
        elif message.type == "unsubscribe" and isinstance(topic, str):
            manager.unsubscribe(client, topic)
        elif on_message is not None:
            await on_message(client, message)
