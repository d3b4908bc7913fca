"""Commands and queries. Domain events live in bento.domain.events."""

from __future__ import annotations

from bento.domain.metadata import BaseMessage, MessageMetadata, current_message, new_message_id


class Command(BaseMessage):
    """An intent to change state, handled by exactly one CommandHandler. Name it imperatively."""


class Query(BaseMessage):
    """A question answered by exactly one QueryHandler, without changing state."""


__all__ = ["BaseMessage", "Command", "MessageMetadata", "Query", "current_message", "new_message_id"]
