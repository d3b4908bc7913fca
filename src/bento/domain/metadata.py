"""Message identity and metadata shared by commands, queries and events.

Correlation is propagated through a context variable: while a handler runs, the bus
marks the message it is handling as *current*, and every message created in that
scope takes the current one's correlation id and uses its id as causation id.
Doing it at construction keeps dispatch a dict look-up and a call (see buses)."""

from __future__ import annotations

import contextvars
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field


def new_message_id() -> str:
    """A random, globally unique message id (UUID4, canonical text)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class MessageMetadata(BaseModel):
    """Tracing and routing facts about a message, never business data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str | None = None
    causation_id: str | None = None
    tenant_id: str | None = None
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    trace_context: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)


_EMPTY_METADATA = MessageMetadata()

#: The message whose handler is running in this context (None outside handlers).
current_message: contextvars.ContextVar[BaseMessage | None] = contextvars.ContextVar(
    "bento_current_message", default=None
)


def _metadata_from_context() -> MessageMetadata:
    parent = current_message.get()
    if parent is None:
        return _EMPTY_METADATA
    parent_meta = parent.metadata
    return MessageMetadata(
        correlation_id=parent_meta.correlation_id or parent.message_id,
        causation_id=parent.message_id,
        tenant_id=parent_meta.tenant_id,
        trace_context=parent_meta.trace_context,
    )


class BaseMessage(BaseModel):
    """Common base of Command, Query and DomainEvent: immutable, strict about fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(default_factory=new_message_id)
    timestamp: datetime = Field(default_factory=utc_now)
    metadata: MessageMetadata = Field(default_factory=_metadata_from_context)

    #: Envelope fields, not business data: excluded from `payload()`.
    ENVELOPE_FIELDS: ClassVar[frozenset[str]] = frozenset({"message_id", "timestamp", "metadata"})

    @property
    def correlation_id(self) -> str:
        """The conversation this message belongs to (its own id when it started one)."""
        return self.metadata.correlation_id or self.message_id

    def with_metadata(self, **changes: Any) -> Self:
        """A copy with some metadata fields replaced (messages are immutable)."""
        return self.model_copy(update={"metadata": self.metadata.model_copy(update=changes)})
