"""`bento events tail|stream|query`: read the configured event store from a terminal.

The store comes from the service's container (`--container module:Class`, default
`$BENTO_CONTAINER`, else the bare `BentoContainer`, which builds the store from the
usual settings: `EVENT_STORE__BACKEND=clickhouse`, `CLICKHOUSE__MODE=server`, ...).
Everything opened is closed before the command returns.

* `tail [-n N] [--follow]`: the last N events in global order; `--follow` keeps
  polling for new ones (Ctrl-C stops).
* `stream NAME [--from-version V]`: one stream's events, in version order.
* `query [--type T]... [--aggregate-type A] [--tenant T] [--since ISO] [--until ISO]`:
  events matching every criterion, in global order.

Output is one line per event; `--json` prints one JSON object per line instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from bento.application.ports.event_store import EventFilter, EventStore, StoredEvent
from bento.cli._stores import DEFAULT_CONTAINER, empty_hint, load_container, require_event_store
from bento.domain.errors import BentoError

PAYLOAD_WIDTH = 80


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("events", help="read the event store: tail, stream, query")
    commands = parser.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    tail = commands.add_parser("tail", help="the last events in global order (optionally following)")
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many recent events (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    tail.add_argument("--interval", type=float, default=0.5, help="poll interval with --follow (seconds)")
    tail.set_defaults(func=_tail)
    stream = commands.add_parser("stream", help="one stream's events in version order")
    stream.add_argument("stream", help="the stream name, e.g. Order-42")
    stream.add_argument("--from-version", type=int, default=0, help="only versions above this one")
    stream.set_defaults(func=_stream)
    query = commands.add_parser("query", help="events by type, aggregate type, tenant and time range")
    query.add_argument("--type", dest="types", action="append", default=[], help="wire name (repeatable)")
    query.add_argument("--aggregate-type", help="aggregate type, e.g. Order")
    query.add_argument("--tenant", help="tenant id")
    query.add_argument("--since", type=_timestamp, help="recorded at or after (ISO 8601; UTC if no zone)")
    query.add_argument("--until", type=_timestamp, help="recorded before (ISO 8601; UTC if no zone)")
    query.add_argument("--after-position", type=int, default=0, help="only positions above this one")
    query.add_argument("--limit", type=int, default=100, help="at most this many events (default 100)")
    query.set_defaults(func=_query)
    for command in (tail, stream, query):
        command.add_argument(
            "--container",
            default=os.environ.get("BENTO_CONTAINER", DEFAULT_CONTAINER),
            help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
        )
        command.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_event(event: StoredEvent, *, as_json: bool = False) -> str:
    """One event as a terminal line (or a JSON object)."""
    if as_json:
        record = asdict(event)
        record["recorded_at"] = event.recorded_at.isoformat()
        record["data"] = json.loads(event.data)
        record["metadata"] = json.loads(event.metadata)
        return json.dumps(record, ensure_ascii=False)
    payload = event.data if len(event.data) <= PAYLOAD_WIDTH else event.data[: PAYLOAD_WIDTH - 1] + "…"
    recorded = event.recorded_at.isoformat(timespec="milliseconds")
    return (
        f"{event.position:>8}  {recorded}  {event.stream}@{event.version}  {event.event_type} "
        f"v{event.schema_version}  {payload}"
    )


def print_events(events: Sequence[StoredEvent], *, as_json: bool = False) -> None:
    for event in events:
        print(format_event(event, as_json=as_json), flush=True)


async def tail(
    store: EventStore, lines: int, *, follow: bool = False, interval: float = 0.5, as_json: bool = False
) -> int:
    """Print the last `lines` events; with `follow`, keep printing new ones. Returns how
    many were printed (without `follow`)."""
    head = await store.last_position()
    after, printed = max(head - max(lines, 0), 0), 0
    while True:
        batch = await store.read_all(after, 1000)
        print_events(batch, as_json=as_json)
        printed += len(batch)
        if batch:
            after = batch[-1].position
            continue
        if not follow:
            return printed
        await asyncio.sleep(interval)


async def _with_store(args: argparse.Namespace) -> tuple[Any, EventStore]:
    """The container and its event store, which must already exist (reading creates nothing)."""
    from bento.infrastructure.container import resolve

    container = load_container(args.container)
    await require_event_store(container)
    store: EventStore = await resolve(container.event_store)
    return container, store


async def _tail(args: argparse.Namespace) -> int:
    from bento.infrastructure.container import shutdown

    container, store = await _with_store(args)
    try:
        printed = await tail(store, args.lines, follow=args.follow, interval=args.interval, as_json=args.json)
        if not printed and not args.follow:
            print(empty_hint(container, "no events in the store"), file=sys.stderr)
        return 0
    finally:
        await shutdown(container)


async def _stream(args: argparse.Namespace) -> int:
    from bento.infrastructure.container import shutdown

    container, store = await _with_store(args)
    try:
        events = await store.read_stream(args.stream, args.from_version)
        print_events(events, as_json=args.json)
        if events:
            return 0
        if args.from_version and await store.read_stream(args.stream, 0):
            print(f"stream {args.stream!r} has no events after version {args.from_version}", file=sys.stderr)
            return 0
        raise StreamNotFoundError(args.stream, empty_hint(container, f"no stream named {args.stream!r}"))
    finally:
        await shutdown(container)


async def _query(args: argparse.Namespace) -> int:
    from bento.infrastructure.container import shutdown

    container, store = await _with_store(args)
    try:
        criteria = EventFilter(
            event_types=tuple(args.types),
            aggregate_type=args.aggregate_type,
            tenant_id=args.tenant,
            since=args.since,
            until=args.until,
            after_position=args.after_position,
            limit=args.limit,
        )
        events = await store.query(criteria)
        print_events(events, as_json=args.json)
        if not events:
            print(empty_hint(container, "no events match"), file=sys.stderr)
        return 0
    finally:
        await shutdown(container)


class StreamNotFoundError(BentoError, LookupError):
    """`bento events stream NAME` names a stream with no events (exit status 1)."""

    def __init__(self, stream: str, message: str) -> None:
        super().__init__(f"{message}; `bento events tail` lists the streams that exist")
        self.stream = stream
