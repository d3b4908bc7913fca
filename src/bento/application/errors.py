"""Port-level failures. Every adapter raises these, so callers never see a driver error."""

from __future__ import annotations

from collections.abc import Sequence

from bento.application.credentials import mask_credentials, mask_url
from bento.domain.errors import BentoError, clipped, quoted


class HandlerNotFoundError(BentoError, LookupError):
    """No handler is registered for a command or query type."""

    def __init__(self, message_type: type) -> None:
        super().__init__(
            f"no handler registered for {message_type.__qualname__}; register one with "
            f"bus.register({message_type.__name__}Handler(...))"
        )
        self.message_type = message_type


class HandlerAlreadyRegisteredError(BentoError, ValueError):
    """A command or query type may have exactly one handler."""

    def __init__(self, message_type: type, existing: object) -> None:
        super().__init__(
            f"{message_type.__qualname__} already has a handler ({type(existing).__qualname__}); "
            "commands and queries have exactly one"
        )
        self.message_type = message_type


class ConcurrencyError(BentoError):
    """Another writer appended first. The store never merges concurrent appends;
    handlers reload and retry, which is safe because the command is validated again."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r} is at version {actual}, not {expected}; reload the aggregate and retry")
        self.stream, self.expected, self.actual = stream, expected, actual


class DeserializationError(BentoError, ValueError):
    """A message body could not be decoded: not UTF-8, bad JSON, too deeply nested, a bad
    envelope, or a payload that fails validation. Any exception while decoding becomes this
    error, so consumers dead-letter the message with the reason instead of dying. The text
    quotes at most a bounded prefix of the wire name, the id and the reason."""

    def __init__(self, reason: str, *, wire_name: str | None = None, message_id: str | None = None) -> None:
        where = []
        if wire_name:
            where.append(f"type {quoted(wire_name)}")
        if message_id:
            where.append(f"id {clipped(message_id, 64)}")
        prefix = f"cannot decode message ({', '.join(where)})" if where else "cannot decode message"
        super().__init__(f"{prefix}: {clipped(reason)}")
        self.reason, self.wire_name, self.message_id = reason, wire_name, message_id


class SerializationError(BentoError, ValueError):
    """A message could not be encoded (a field holds a value JSON cannot represent).
    Raised before anything is sent or stored."""

    def __init__(self, reason: str, *, wire_name: str, message_id: str) -> None:
        super().__init__(f"cannot encode message (type {quoted(wire_name)}, id {message_id}): {clipped(reason)}")
        self.reason, self.wire_name, self.message_id = reason, wire_name, message_id


class UnknownMessageTypeError(DeserializationError):
    """The envelope names a wire name no registered class claims."""

    def __init__(self, wire_name: str, *, message_id: str | None = None, known: Sequence[str] = ()) -> None:
        hint = f" (known: {', '.join(sorted(known)[:10])}{', …' if len(known) > 10 else ''})" if known else ""
        super().__init__(
            f"unknown message type {quoted(wire_name)}{hint}; define a DomainEvent with that wire name",
            wire_name=wire_name,
            message_id=message_id,
        )


class MessageTooLargeError(BentoError, ValueError):
    """A message body is larger than the bus's `max_message_bytes`.

    `publish` and `publish_batch` raise it before anything is sent; a consumer that receives
    such a body (from another producer) dead-letters it with this error. Brokers have limits
    of their own (NATS `max_payload`, 1 MiB by default); the setting keeps every bus within
    one, and keeps a single message from taking a consumer's memory."""

    def __init__(self, size: int, limit: int, *, topic: str) -> None:
        super().__init__(
            f"a message of {size} bytes on {quoted(topic)} is larger than max_message_bytes ({limit}); "
            "send a reference to large data instead, or raise the setting within the broker's own limit"
        )
        self.size, self.limit, self.topic = size, limit, topic


class PublishError(BentoError):
    """The transport did not confirm a publish; the message may not have been sent."""

    def __init__(self, topic: str, reason: str) -> None:
        reason = mask_credentials(reason)  # often a driver's message, which may quote a URL
        super().__init__(f"publishing to {quoted(topic)} failed: {clipped(reason)}")
        self.topic, self.reason = topic, reason


class SubscribeError(BentoError):
    """A subscription could not be set up."""

    def __init__(self, topic: str, reason: str) -> None:
        reason = mask_credentials(reason)
        super().__init__(f"subscribing to {quoted(topic)} failed: {clipped(reason)}")
        self.topic, self.reason = topic, reason


class BrokerUnavailableError(BentoError, ConnectionError):
    """The broker or store could not be reached. `where` and `reason` are shown with URL
    credentials masked, whatever the caller passed (a driver's message may quote the URL)."""

    def __init__(self, what: str, where: str, reason: str) -> None:
        where, reason = mask_url(where), mask_credentials(reason)
        super().__init__(f"{what} at {where} is unreachable: {reason}")
        self.what, self.where, self.reason = what, where, reason


class BrokerRefusedError(BrokerUnavailableError):
    """The broker answered but refused the connection: the credentials are wrong, or the
    virtual host (namespace, database) does not exist or the user may not use it. Retrying
    does not help; the message says which setting to fix."""

    def __init__(self, what: str, where: str, reason: str) -> None:
        where, reason = mask_url(where), mask_credentials(reason)
        BentoError.__init__(self, f"{what} at {where} refused the connection: {reason}")
        self.what, self.where, self.reason = what, where, reason


class BusClosedError(BentoError, RuntimeError):
    """The adapter was closed (or never started) and refuses new work."""


class ConfigurationError(BentoError, ValueError):
    """Settings are invalid; the message lists every problem at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        if len(problems) == 1:  # one line: what to set
            super().__init__(f"invalid Bento configuration: {problems[0]}")
        else:
            lines = "\n".join(f"  - {p}" for p in problems)
            super().__init__(f"invalid Bento configuration ({len(problems)} problems):\n{lines}")
        self.problems = list(problems)


class MissingExtraError(BentoError, ImportError):
    """An adapter's client library is not installed."""

    def __init__(self, adapter: str, extra: str, module: str) -> None:
        super().__init__(f"the {adapter} adapter needs the {module!r} package: pip install 'bento-ddd[{extra}]'")
        self.adapter, self.extra, self.module = adapter, extra, module


class LockTimeoutError(BentoError, TimeoutError):
    """A StreamLock could not be taken in time (another writer holds the stream)."""

    def __init__(self, streams: object, timeout: float) -> None:
        super().__init__(f"could not lock stream(s) {streams!r} within {timeout:.1f}s; another writer holds them")
        self.streams, self.timeout = streams, timeout


class InvalidTextError(BentoError, ValueError):
    """A name or filter value is not valid Unicode text (a lone surrogate, as from
    `surrogateescape`): stores keep UTF-8, so it could never match anything stored."""

    def __init__(self, what: str, value: str) -> None:
        shown = value[:80] + ("..." if len(value) > 80 else "")
        super().__init__(f"{what} {shown!r} is not valid UTF-8 text (it holds a lone surrogate); pass real text")
        self.what, self.value = what, shown


class WriterLeaseError(BentoError, RuntimeError):
    """A store in single-writer mode is not (or no longer) the only writer of its table:
    it refuses to write rather than risk duplicate positions or versions."""


class CacheKeyError(BentoError, TypeError):
    """`@cached` could not build a key from a call's arguments (they are not JSON-able)."""

    def __init__(self, function: str, reason: str) -> None:
        super().__init__(
            f"cannot build a cache key for {function}: {reason[:200]}; pass key=lambda *args, **kwargs: '...' "
            "to @cached"
        )
        self.function, self.reason = function, reason[:200]


class CacheValueError(BentoError, TypeError):
    """A value cannot be cached: the cache keeps JSON (through pydantic), never pickles."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"cannot cache the value of {key[:120]!r}: {reason[:200]}; return JSON-able data or pydantic models"
        )
        self.key, self.reason = key[:120], reason[:200]


class CommandTimeoutError(BentoError, TimeoutError):
    """No reply came in time from a remote CommandBus or QueryBus: no service hosts the
    handler, the worker died, or the reply was lost. The command may still run (a `send`
    would be redelivered); callers that retry should make the command idempotent."""

    def __init__(self, command: str, destination: str, timeout: float) -> None:
        super().__init__(
            f"no reply to {quoted(command)} from topic {quoted(destination)} within {timeout:g}s; is a service "
            "hosting its handler running (`bento run`)? Raise the timeout with `timeout=` or COMMAND__REQUEST_TIMEOUT"
        )
        self.command, self.destination, self.timeout = command, destination, timeout


class RemoteHandlerError(BentoError):
    """A remote handler raised something other than a registered DomainError; the type, the
    message (bounded) and the service that ran it are kept as attributes."""

    def __init__(self, remote_type: str, remote_message: str, service: str, *, command: str = "") -> None:
        what = f" handling {quoted(command)}" if command else ""
        super().__init__(
            f"service {quoted(service)} raised {clipped(remote_type, 200)}{what}: {clipped(remote_message, 1000)}"
        )
        self.remote_type, self.remote_message, self.service, self.command = (
            remote_type,
            remote_message,
            service,
            command,
        )


class MalformedReplyError(BentoError, ValueError):
    """A reply reached the caller but could not be read (a foreign producer, a version skew)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"the reply to {quoted(command)} is malformed: {clipped(reason, 500)}")
        self.command, self.reason = command, reason
