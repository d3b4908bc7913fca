"""Bento: hexagonal DDD messaging for Python.

The public API: domain building blocks, messages, handler bases, buses, ports and
typed errors. Adapters are imported from their packages (`bento.adapters...`), and
the container from `bento.infrastructure.container`.
"""

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
from bento.application.ports import (
    ANY_VERSION,
    NO_STREAM,
    Capabilities,
    CheckpointStore,
    DeadLetter,
    EventFilter,
    EventPublisherPort,
    EventStore,
    HealthStatus,
    Inbox,
    MessageBus,
    ReadModelPort,
    StoredEvent,
    StreamLock,
)
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

__version__ = "0.1.0"

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "AggregateRoot",
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
    "PublishError",
    "Query",
    "QueryBus",
    "QueryHandler",
    "ReadModelPort",
    "RetryPolicy",
    "SerializationError",
    "StoredEvent",
    "StreamLock",
    "SubscribeError",
    "UnknownMessageTypeError",
    "ValueObject",
    "__version__",
    "when",
]
