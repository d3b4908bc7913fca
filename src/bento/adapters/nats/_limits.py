"""What fits in one NATS message: the server's `max_payload` bounds headers *plus* body.

nats-py checks only the body against `max_payload`; headers push a message over the
limit unnoticed, the server answers `-ERR 'Maximum Payload Violation'`, and nats-py
closes the client for good. So the adapter measures the whole frame itself: a publish
that cannot fit is refused before it is sent, and a dead letter (the original body plus
error headers) is cut down to fit.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Dead-letter headers that say the body was cut and where the whole original is.
TRUNCATED_HEADER = "x-bento-body-truncated"
ORIGINAL_STREAM_HEADER = "x-bento-original-stream"
ORIGINAL_SEQUENCE_HEADER = "x-bento-original-sequence"
HEADERS_DROPPED_HEADER = "x-bento-headers-dropped"

_STATUS_LINE = len(b"NATS/1.0\r\n") + len(b"\r\n")


def header_bytes(headers: Mapping[str, str] | None) -> int:
    """Bytes nats-py sends for `headers` (`NATS/1.0`, `key: value` lines, blank line)."""
    if not headers:
        return 0
    return _STATUS_LINE + sum(len(k.strip().encode()) + len(v.strip().encode()) + 4 for k, v in headers.items())


def frame_bytes(body: bytes, headers: Mapping[str, str] | None) -> int:
    return len(body) + header_bytes(headers)


def fits(body: bytes, headers: Mapping[str, str] | None, limit: int) -> bool:
    """`frame_bytes(body, headers) <= limit`, decided by a cheap upper bound first (4 bytes per
    character at most), since every published message is checked."""
    if not headers:
        return len(body) <= limit
    bound = _STATUS_LINE + 4 * (len("".join(headers)) + len("".join(headers.values()))) + 4 * len(headers)
    return len(body) + bound <= limit or frame_bytes(body, headers) <= limit


def fit_dead_letter(
    body: bytes, headers: dict[str, str], *, max_payload: int, stream: str, sequence: int
) -> tuple[bytes, dict[str, str]]:
    """`body` and `headers` unchanged when they fit `max_payload`. Otherwise the body is cut
    to what fits, with headers naming its full length and the original's stream and
    sequence (read it with `js.get_msg(stream, sequence)` while retention keeps it); if
    even an empty body does not fit, the message's own headers (not `x-bento-*` nor
    `Nats-*`) are dropped and their number is recorded."""
    if frame_bytes(body, headers) <= max_payload:
        return body, headers
    headers = {
        **headers,
        TRUNCATED_HEADER: str(len(body)),
        ORIGINAL_STREAM_HEADER: stream,
        ORIGINAL_SEQUENCE_HEADER: str(sequence),
    }
    if header_bytes(headers) > max_payload:
        own = [k for k in headers if not k.lower().startswith(("x-bento-", "nats-"))]
        headers = {k: v for k, v in headers.items() if k not in own}
        headers[HEADERS_DROPPED_HEADER] = str(len(own))
    room = max(0, max_payload - header_bytes(headers))
    return body[:room], headers
