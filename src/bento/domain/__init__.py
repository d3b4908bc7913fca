"""Domain layer: aggregates, entities, value objects and domain events."""

from bento.domain.aggregate import AggregateRoot, when
from bento.domain.errors import BentoError, DomainError, DuplicateMessageTypeError
from bento.domain.events import DomainEvent, Event
from bento.domain.metadata import BaseMessage, MessageMetadata
from bento.domain.model import Entity, ValueObject

__all__ = [
    "AggregateRoot",
    "BaseMessage",
    "BentoError",
    "DomainError",
    "DomainEvent",
    "DuplicateMessageTypeError",
    "Entity",
    "Event",
    "MessageMetadata",
    "ValueObject",
    "when",
]
