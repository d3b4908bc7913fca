"""`bento dlq ls|show|replay|purge`: the messages a subscription gave up on, on the broker.

Works through the configured bus (the `EVENT__…` settings, as the service uses them), so it
works on every broker from any process. `replay` and `purge` change the queue, so with no
filter (`--id`, `--error-type`) they ask for `--all`: an operator never empties a queue by
leaving out an argument. `replay` requeues each letter before removing it (the guarantee is
`MessageBus.requeue_dead_letters`'s): interrupted, it leaves the letter in the queue, and the
next replay sends it again, which the subscriber's inbox absorbs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageBus
from bento.cli._stores import DEFAULT_CONTAINER, load_container
from bento.domain.errors import BentoError, clipped

T = TypeVar("T")


class DeadLetterNotFoundError(BentoError, LookupError):
    """No dead letter with that id on the subscription."""

    def __init__(self, letter_id: str, topic: str, group: str | None) -> None:
        super().__init__(f"no dead letter {clipped(letter_id, 100)!r} on {topic!r} (group {group!r})")


class SelectionRequiredError(BentoError, ValueError):
    """`replay`/`purge` without a filter and without `--all`."""

    def __init__(self, command: str) -> None:
        super().__init__(
            f"bento dlq {command} changes the dead-letter queue: name the letters with --id or "
            "--error-type, or pass --all for every letter of the subscription"
        )


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("dlq", help="list, show, replay and purge dead letters")
    commands = parser.add_subparsers(dest="dlq_command", metavar="SUBCOMMAND")
    ls = commands.add_parser("ls", help="the dead letters of one subscription (topic and group)")
    show = commands.add_parser("show", help="one dead letter with its headers and body")
    show.add_argument("letter_id", help="the dead letter's id or message id (from `bento dlq ls`)")
    replay = commands.add_parser("replay", help="requeue dead letters to their subscription, then remove them")
    purge = commands.add_parser("purge", help="remove dead letters for good")
    for command in (ls, show, replay, purge):
        command.add_argument("topic", help="the subscription's topic")
        command.add_argument("--group", help="the subscription's group (omit for a broadcast subscription)")
        command.add_argument("--json", action="store_true", help="JSON output (one object per line for ls)")
        command.add_argument(
            "--container",
            default=os.environ.get("BENTO_CONTAINER", DEFAULT_CONTAINER),
            help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
        )
    for command in (ls, show):
        command.add_argument("--limit", type=int, default=100, help="letters read (default 100)")
    for command in (replay, purge):
        command.add_argument(
            "--id", action="append", default=[], dest="ids", metavar="ID", help="a letter id or message id (repeat)"
        )
        command.add_argument("--error-type", help="only letters that failed with this error type")
        command.add_argument("--all", action="store_true", help="every letter of the subscription")
    replay.add_argument("--rate", type=_positive, help="at most this many letters per second")
    ls.set_defaults(func=_ls)
    show.set_defaults(func=_show)
    replay.set_defaults(func=_replay)
    purge.set_defaults(func=_purge)
    parser.set_defaults(func=lambda args: _help(parser))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{clipped(text, 20)!r} is not a positive number of letters per second")
    return value


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


async def _with_bus(args: argparse.Namespace, action: Callable[[MessageBus], Awaitable[T]]) -> T:
    from bento.infrastructure.container import shutdown

    container = load_container(args.container)
    try:
        return await action(await container.message_bus())
    finally:
        await shutdown(container)


def summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "letter_id": letter.letter_id,
        "message_id": letter.message_id,
        "topic": letter.topic,
        "group": letter.group,
        "key": letter.key,
        "attempts": letter.attempts,
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "first_failed_at": _iso(letter.first_failed_at),
        "last_failed_at": _iso(letter.last_failed_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _selection(args: argparse.Namespace, command: str) -> DeadLetterSelection | None:
    if not args.ids and args.error_type is None:
        if not args.all:
            raise SelectionRequiredError(command)
        return None
    return DeadLetterSelection(ids=frozenset(args.ids), error_type=args.error_type)


async def _ls(args: argparse.Namespace) -> int:
    letters = await _with_bus(args, lambda bus: bus.dead_letters(args.topic, group=args.group, limit=args.limit))
    if not letters:
        print(f"no dead letters on {args.topic!r} (group {args.group!r})", file=sys.stderr)
    elif not args.json:
        print(f"{'LETTER':<24}  {'MESSAGE ID':<36}  {'TRIES':>5}  {'LAST FAILED (UTC)':<19}  ERROR")
    for letter in letters:
        if args.json:
            print(json.dumps(summary(letter)), flush=True)
        else:
            error = clipped(f"{letter.error_type}: {letter.error_message}", 80)
            failed = letter.last_failed_at.strftime("%Y-%m-%d %H:%M:%S") if letter.last_failed_at else "-"
            print(
                f"{clipped(letter.letter_id, 24):<24}  {letter.message_id or '-':<36}  {letter.attempts:>5}  "
                f"{failed:<19}  {error}"
            )
    return 0


async def _show(args: argparse.Namespace) -> int:
    letters = await _with_bus(args, lambda bus: bus.dead_letters(args.topic, group=args.group, limit=args.limit))
    found = next((d for d in letters if args.letter_id in (d.letter_id, d.message_id)), None)
    if found is None:
        raise DeadLetterNotFoundError(args.letter_id, args.topic, args.group)
    detail = {
        **summary(found),
        "headers": dict(found.headers),
        "body": found.body.decode("utf-8", errors="replace"),
    }
    if args.json:
        print(json.dumps(detail))
    else:
        for name, value in detail.items():
            print(f"{name}: {json.dumps(value) if isinstance(value, dict) else value}")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    selection = _selection(args, "replay")
    requeued = await _with_bus(
        args,
        lambda bus: bus.requeue_dead_letters(args.topic, group=args.group, selection=selection, rate=args.rate),
    )
    if args.json:
        print(json.dumps({"requeued": len(requeued), "letters": [summary(d) for d in requeued]}))
    else:
        for letter in requeued:
            print(f"requeued {letter.letter_id}  {letter.message_id or '-'}")
    print(f"requeued {len(requeued)} dead letter(s) of {args.topic!r} (group {args.group!r})", file=sys.stderr)
    return 0


async def _purge(args: argparse.Namespace) -> int:
    selection = _selection(args, "purge")
    count = await _with_bus(args, lambda bus: bus.purge_dead_letters(args.topic, group=args.group, selection=selection))
    if args.json:
        print(json.dumps({"purged": count}))
    print(f"purged {count} dead letter(s) of {args.topic!r} (group {args.group!r})", file=sys.stderr)
    return 0
