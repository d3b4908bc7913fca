"""QueryBus port: exactly one handler per query type."""

from __future__ import annotations

from typing import Any, Protocol

from bento.application.messages import Query


class QueryBus(Protocol):
    """Answers a query with its one handler; HandlerNotFoundError when there is none."""

    async def ask(self, query: Query) -> Any: ...
