"""Stream entries written by other libraries that Bento reads (docs/wire-format.md, Redis).

Bento's own entries hold the body in `b` and the transport headers as JSON in `h`. FastStream
writes one `__data__` field: its binary format v1 (a magic prefix, big-endian offsets, the
headers as length-prefixed strings, then the body) or, from older versions, the JSON object
`{"data": "<body>", "headers": {...}}`. Either becomes a body and headers here.
"""

from __future__ import annotations

import json
import struct

from bento.application.errors import DeserializationError

FASTSTREAM_FIELD = b"__data__"
_MAGIC = b"\x89BIN\r\n\x1a\n"


def faststream_message(data: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a FastStream `__data__` field; DeserializationError if neither form."""
    try:
        if data.startswith(_MAGIC):
            version, headers_start, data_start = struct.unpack_from(">HII", data, len(_MAGIC))
            if version != 1:
                raise DeserializationError(f"FastStream binary message version {version} is not supported")
            (count,) = struct.unpack_from(">H", data, headers_start)
            position, headers = headers_start + 2, {}
            for _ in range(count):
                key, position = _string(data, position)
                value, position = _string(data, position)
                headers[key] = value
            return data[data_start:], headers
        parsed = json.loads(data)
        body, headers = parsed["data"], parsed.get("headers") or {}
        if not isinstance(body, str) or not isinstance(headers, dict):
            raise DeserializationError("FastStream JSON message needs 'data' (string) and 'headers' (object)")
        return body.encode(), {str(k): str(v) for k, v in headers.items()}
    except DeserializationError:
        raise
    except Exception as exc:  # untrusted bytes: any failure is the same typed error
        raise DeserializationError(
            f"the entry has no 'b' field, and its '__data__' field is not a FastStream message "
            f"({type(exc).__name__}); the raw entry is kept in the dead letter"
        ) from None


def _string(data: bytes, position: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">H", data, position)
    start = position + 2
    if start + length > len(data):
        raise DeserializationError("FastStream binary message is truncated")
    return data[start : start + length].decode("utf-8"), start + length
