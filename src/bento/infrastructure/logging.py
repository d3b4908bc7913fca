"""Log output of a Bento process: `service.log_level` applied, text or one JSON object per line.

Log lines about a message carry its facts as `extra` fields (`message_id`, `topic`, `group`,
`attempt`, `correlation_id`; see bento.adapters.shared.delivery); the text format shows the
line only, `BENTO_LOG_FORMAT=json` writes every field, so a log pipeline can filter by message
id without parsing text. stdlib logging only.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

#: Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_HANDLER_NAME = "bento"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message, every `extra`
    field, and `exception` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, fmt: str | None = None, stream: TextIO | None = None) -> None:
    """Send the `bento` loggers (and the service's, through the root logger) to `stream`
    (stderr) at `level`; `fmt` is `text` or `json` (default: `BENTO_LOG_FORMAT`, else text).
    Calling it again replaces the handler it installed, never one the application added."""
    chosen = (fmt or os.environ.get("BENTO_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("bento").setLevel(level)
