"""Root of every error Bento raises; imports nothing, so every layer can use it."""

from __future__ import annotations


class BentoError(Exception):
    """Base class of every error raised by Bento itself."""


class DomainError(BentoError):
    """A business rule refused an operation; raised by aggregates and handlers."""


class DuplicateMessageTypeError(BentoError, TypeError):
    """Two message classes claimed the same wire name.

    Raised at class-definition time: brokers and stores key on the wire name, so two
    classes sharing one would silently decode each other's messages."""

    def __init__(self, wire_name: str, existing: str, new: str) -> None:
        super().__init__(
            f"wire name {wire_name!r} is already used by {existing}; {new} must choose another "
            "(set it with `class X(DomainEvent, name=...)` or an `event_name` property)"
        )
        self.wire_name, self.existing, self.new = wire_name, existing, new


class InvalidMessageDefinitionError(BentoError, TypeError):
    """A message class is declared in a way Bento cannot give a stable wire identity."""


#: Characters of untrusted text (a wire name, a topic, a body fragment) an error message quotes.
QUOTE_LIMIT = 120


def quoted(value: str | bytes, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of at most `limit` characters of untrusted `value`, saying how long it really was.

    Every error and log line that quotes input from the wire goes through here: a 50 MB wire
    name once became a 100-million-character error message (and hundreds of MB of copies)."""
    if len(value) <= limit:
        return repr(value)
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{value[:limit]!r}… ({len(value)} {unit})"


def clipped(text: str, limit: int = 1000) -> str:
    """`text` cut to `limit` characters, for reasons that may embed untrusted fragments."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
