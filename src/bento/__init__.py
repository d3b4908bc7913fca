"""Bento: hexagonal DDD messaging for Python.

The public API: domain building blocks, messages, handler bases, buses, event sourcing
(repository, projections, outbox relay), ports, the container and typed errors. Adapters
are imported from their packages (`bento.adapters.<technology>`). `BentoContainer` and
`register_handlers` are imported on first use, so `import bento` loads no adapter.
"""

from typing import TYPE_CHECKING, Any

from bento.application.buses import CommandBus, EventBus, QueryBus
from bento.application.errors import (
    BrokerUnavailableError,
    BusClosedError,
    ConcurrencyError,
    ConfigurationError,
    DeserializationError,
    HandlerAlreadyRegisteredError,
    HandlerNotFoundError,
    LockTimeoutError,
    MessageTooLargeError,
    MissingExtraError,
    PublishError,
    SerializationError,
    SubscribeError,
    UnknownMessageTypeError,
)
from bento.application.handlers import CommandHandler, EventHandler, QueryHandler
from bento.application.messages import Command, Query
from bento.application.middleware import CorrelationMiddleware, LoggingMiddleware, Middleware
from bento.application.outbox import OutboxRelay
from bento.application.ports import (
    ANY_VERSION,
    NO_STREAM,
    Capabilities,
    CheckpointStore,
    DeadLetter,
    DeadLetterSelection,
    EventFilter,
    EventPublisherPort,
    EventStore,
    HealthStatus,
    Inbox,
    MessageBus,
    ReadModelPort,
    ReadModels,
    SnapshotStore,
    StoredEvent,
    StreamLock,
    WorkQueue,
)
from bento.application.projections import Projection, ProjectionError, ProjectionRunner
from bento.application.repository import AggregateNotFoundError, EventSourcedRepository
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.domain import (
    AggregateRoot,
    BentoError,
    DomainError,
    DomainEvent,
    DuplicateMessageTypeError,
    Entity,
    Event,
    MessageMetadata,
    ValueObject,
    when,
)

if TYPE_CHECKING:
    from bento.infrastructure.container import BentoContainer, register_handlers

__version__ = "0.1.0"

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "AggregateNotFoundError",
    "AggregateRoot",
    "BentoContainer",
    "BentoError",
    "BrokerUnavailableError",
    "BusClosedError",
    "Capabilities",
    "CheckpointStore",
    "Command",
    "CommandBus",
    "CommandHandler",
    "ConcurrencyError",
    "ConfigurationError",
    "CorrelationMiddleware",
    "DeadLetter",
    "DeadLetterSelection",
    "DeserializationError",
    "DomainError",
    "DomainEvent",
    "DuplicateMessageTypeError",
    "Entity",
    "Event",
    "EventBus",
    "EventFilter",
    "EventHandler",
    "EventPublisherPort",
    "EventSourcedRepository",
    "EventStore",
    "HandlerAlreadyRegisteredError",
    "HandlerNotFoundError",
    "HealthStatus",
    "Inbox",
    "JsonCodec",
    "LockTimeoutError",
    "LoggingMiddleware",
    "MessageBus",
    "MessageMetadata",
    "MessageRegistry",
    "MessageTooLargeError",
    "Middleware",
    "MissingExtraError",
    "OutboxRelay",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "PublishError",
    "Query",
    "QueryBus",
    "QueryHandler",
    "ReadModelPort",
    "ReadModels",
    "RetryPolicy",
    "SerializationError",
    "SnapshotStore",
    "StoredEvent",
    "StreamLock",
    "SubscribeError",
    "UnknownMessageTypeError",
    "ValueObject",
    "WorkQueue",
    "__version__",
    "register_handlers",
    "when",
]


def __getattr__(name: str) -> Any:
    """The container, imported on first use (it names the adapters; `import bento` does not)."""
    if name in {"BentoContainer", "register_handlers"}:
        from bento.infrastructure import container

        return getattr(container, name)
    raise AttributeError(f"module 'bento' has no attribute {name!r}")
