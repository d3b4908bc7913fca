"""Root of every error Bento raises; imports nothing, so every layer can use it."""

from __future__ import annotations


class BentoError(Exception):
    """Base class of every error raised by Bento itself."""


class DomainError(BentoError):
    """A business rule refused an operation; raised by aggregates and handlers.

    A subclass declared with a wire name (`class OutOfStock(DomainError, name="stock.out")`)
    crosses a remote CommandBus as itself: the caller gets the same class with the same
    message. DomainError itself travels as `bento.domain_error`; an unnamed subclass reaches
    the caller as RemoteHandlerError (nothing on the caller's side could be sure to rebuild it).
    """

    __wire_name__: str | None = "bento.domain_error"

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.__wire_name__ = name
        if name is not None:
            for existing in _domain_error_types():
                same = existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__
                if existing is not cls and existing.__wire_name__ == name and not same:
                    raise DuplicateMessageTypeError(
                        name, f"{existing.__module__}.{existing.__qualname__}", f"{cls.__module__}.{cls.__qualname__}"
                    )


def _domain_error_types() -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    stack = list(DomainError.__subclasses__())
    while stack:
        klass = stack.pop()
        found.append(klass)
        stack.extend(klass.__subclasses__())
    return found


def domain_error_type(wire_name: str) -> type[DomainError] | None:
    """The DomainError class declared with `wire_name` (the class tree is the registry)."""
    if wire_name == DomainError.__wire_name__:
        return DomainError
    for klass in _domain_error_types():
        if klass.__wire_name__ == wire_name:
            return klass
    return None


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
