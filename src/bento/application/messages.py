"""Commands and queries. Domain events live in bento.domain.events.

Both carry a stable wire name and schema version exactly like events (see
`bento.domain.wire`), because a remote CommandBus or QueryBus sends them to another
process: the topic of a command is its wire name.
"""

from __future__ import annotations

from typing import ClassVar

from bento.domain.metadata import BaseMessage, MessageMetadata, current_message, new_message_id
from bento.domain.wire import WireMessage


class Command(WireMessage, abstract=True):
    """An intent to change state, handled by exactly one CommandHandler. Name it imperatively."""

    __name_property__: ClassVar[str] = "command_name"

    @property
    def command_name(self) -> str:
        """The wire name (seed spelling, like an event's `event_name`)."""
        return type(self).__wire_name__


class Query(WireMessage, abstract=True):
    """A question answered by exactly one QueryHandler, without changing state."""

    __name_property__: ClassVar[str] = "query_name"

    @property
    def query_name(self) -> str:
        """The wire name (seed spelling, like an event's `event_name`)."""
        return type(self).__wire_name__


__all__ = [
    "BaseMessage",
    "Command",
    "MessageMetadata",
    "Query",
    "WireMessage",
    "current_message",
    "new_message_id",
]
