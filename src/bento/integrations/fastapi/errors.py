"""Bento's errors as HTTP answers: `add_error_handlers(app)`.

A route that dispatches a command lets the domain speak: `ConcurrencyError` (another writer
got there first; the client may reload and retry) is 409 Conflict, `AggregateNotFoundError`
is 404 Not Found, and any other `DomainError` (a rule the command broke) is 422. The body is
an RFC 9457 problem document (`application/problem+json`) whose `detail` is the error's own
message, which says what happened and what to do; `error` names the class.
Anything else stays a 500: an unexpected failure is not the client's to read.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bento.application.errors import ConcurrencyError
from bento.application.repository import AggregateNotFoundError
from bento.domain.errors import BentoError, DomainError

#: Error classes and their status, most specific first.
STATUS_BY_ERROR: tuple[tuple[type[BentoError], int, str], ...] = (
    (ConcurrencyError, 409, "Conflict"),
    (AggregateNotFoundError, 404, "Not Found"),
    (DomainError, 422, "Unprocessable Content"),
)


def problem(exc: BentoError, status: int, title: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": str(exc), "error": type(exc).__name__}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def add_error_handlers(app: FastAPI) -> None:
    """Register the handlers of STATUS_BY_ERROR on `app`."""
    for error, status, title in STATUS_BY_ERROR:

        async def handle(request: Request, exc: Exception, status: int = status, title: str = title) -> JSONResponse:
            assert isinstance(exc, BentoError)
            return problem(exc, status, title)

        app.add_exception_handler(error, handle)
