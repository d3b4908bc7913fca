"""Middleware: wrappers composed around a handler once, when it is registered.

A middleware is `async def mw(message, call_next) -> result`. Composition happens at
registration, so a dispatch is a dict look-up and a chain of plain awaits — no
per-dispatch list walking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from bento.domain.metadata import BaseMessage, current_message

logger = logging.getLogger(__name__)

Call = Callable[[Any], Awaitable[Any]]


class Middleware(Protocol):
    """`async def __call__(message, call_next)`. A middleware may also offer
    `wrap(call_next) -> Call`, which `compose` prefers: it builds one closure per
    handler at registration instead of a generic adapter frame per call."""

    async def __call__(self, message: Any, call_next: Call) -> Any: ...


class CorrelationMiddleware:
    """Marks the message as current while its handler runs, so every message created
    inside inherits its correlation id and takes its id as causation id."""

    async def __call__(self, message: BaseMessage, call_next: Call) -> Any:
        token = current_message.set(message)
        try:
            return await call_next(message)
        finally:
            current_message.reset(token)

    def wrap(self, call_next: Call) -> Call:
        set_current, reset_current = current_message.set, current_message.reset

        async def call(message: Any) -> Any:
            token = set_current(message)
            try:
                return await call_next(message)
            finally:
                reset_current(token)

        return call


class LoggingMiddleware:
    """Logs failures with the message type and id (DEBUG also logs each call, its time
    and the traceback; otherwise the caller that handles the error owns the traceback)."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    async def __call__(self, message: BaseMessage, call_next: Call) -> Any:
        if not self._log.isEnabledFor(logging.DEBUG):
            try:
                return await call_next(message)
            except Exception as exc:
                self._log.warning("handler failed for %s %s: %r", type(message).__name__, message.message_id, exc)
                raise
        started = time.perf_counter()
        try:
            result = await call_next(message)
        except Exception:
            self._log.exception("handler failed for %s %s", type(message).__name__, message.message_id)
            raise
        self._log.debug(
            "handled %s %s in %.3f ms",
            type(message).__name__,
            message.message_id,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def wrap(self, call_next: Call) -> Call:
        log = self._log

        async def call(message: Any) -> Any:
            if log.isEnabledFor(logging.DEBUG):
                return await self(message, call_next)
            try:
                return await call_next(message)
            except Exception as exc:
                log.warning("handler failed for %s %s: %r", type(message).__name__, message.message_id, exc)
                raise

        return call


def default_middleware() -> list[Middleware]:
    """What buses use unless told otherwise: correlation propagation and failure logging."""
    return [CorrelationMiddleware(), LoggingMiddleware()]


def compose(handler: Call, middleware: Sequence[Middleware]) -> Call:
    """Wrap `handler` in `middleware` (first = outermost), once."""
    call = handler
    for mw in reversed(middleware):
        wrap = getattr(mw, "wrap", None)
        call = wrap(call) if wrap is not None else _bind(mw, call)
    return call


def _bind(mw: Middleware, call_next: Call) -> Call:
    async def call(message: Any) -> Any:
        return await mw(message, call_next)

    return call
