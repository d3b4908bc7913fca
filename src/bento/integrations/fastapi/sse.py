"""Server-Sent Events over streaming channels (ChannelPort or ChannelManager).

    @app.get("/sse/{user_id}")
    async def stream(user_id: str) -> StreamingResponse:
        return channel_stream(ChannelManager.get_instance("sse"), f"user:{user_id}")

The response is `text/event-stream`; each channel message is one frame from its `to_sse()`
(`id`, `event`, JSON `data`). The stream opens with a comment frame once the subscription
listens, so a client that waits for the first bytes knows that what is published from then on
reaches it; a comment is sent every `keepalive` seconds without messages so proxies keep the
connection open. A client that goes away cancels the generator, which closes the subscription.
Slow clients never hold up publishers: their bounded queue drops the oldest (ChannelPort).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from fastapi.responses import StreamingResponse

from bento.application.errors import BusClosedError
from bento.integrations.fastapi.shutdown import shutting_down

SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


class _Frame(Protocol):
    def to_sse(self) -> str: ...


class _Subscription(Protocol):
    async def start(self) -> None: ...

    async def receive(self, within: float | None = None) -> Any: ...

    async def aclose(self) -> None: ...


class _Channel(Protocol):
    def subscribe(self, channel: str) -> Any: ...

    def psubscribe(self, pattern: str) -> Any: ...


async def sse_events(
    subscription: _Subscription, *, keepalive: float = 15.0, retry_ms: int | None = None
) -> AsyncIterator[str]:
    """SSE frames of a channel subscription until it ends, the client leaves, or the server
    begins to shut down (`shutting_down()`, set by the lifespan on SIGINT/SIGTERM)."""
    stop = shutting_down()
    try:
        await subscription.start()
        yield (f"retry: {retry_ms}\n" if retry_ms else "") + ": connected\n\n"
        while not stop.is_set():
            receiving = asyncio.ensure_future(subscription.receive(within=keepalive))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, BusClosedError):
                    await receiving
                return
            try:
                message: _Frame | None = receiving.result()
            except BusClosedError:
                return
            yield ": keep-alive\n\n" if message is None else message.to_sse()
    finally:
        await subscription.aclose()


def sse_response(
    subscription: _Subscription,
    *,
    keepalive: float = 15.0,
    retry_ms: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """A `text/event-stream` response streaming `subscription` (see the module docstring)."""
    return StreamingResponse(
        sse_events(subscription, keepalive=keepalive, retry_ms=retry_ms),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **(headers or {})},
    )


def channel_stream(
    channel: _Channel,
    name: str,
    *,
    pattern: bool = False,
    keepalive: float = 15.0,
    retry_ms: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Stream channel `name` (or every channel matching it, with `pattern=True`) as SSE."""
    subscription = channel.psubscribe(name) if pattern else channel.subscribe(name)
    return sse_response(subscription, keepalive=keepalive, retry_ms=retry_ms, headers=headers)
