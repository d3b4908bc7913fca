"""`bento dlq ls|show`: the messages a subscription gave up on, read from the broker.

Reads through the configured bus's `dead_letters(topic, group=...)` (the `EVENT__…` settings,
as the service uses them), so it works on every broker from any process; it never removes or
requeues a letter. Requeueing and purging need a bus API that does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bento.application.ports.message_bus import DeadLetter
from bento.cli._stores import DEFAULT_CONTAINER, load_container
from bento.domain.errors import BentoError, clipped


class DeadLetterNotFoundError(BentoError, LookupError):
    """No dead letter with that message id on the subscription."""

    def __init__(self, message_id: str, topic: str, group: str | None) -> None:
        super().__init__(f"no dead letter {clipped(message_id, 100)!r} on {topic!r} (group {group!r})")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("dlq", help="list and show dead-lettered messages")
    commands = parser.add_subparsers(dest="dlq_command", metavar="SUBCOMMAND")
    ls = commands.add_parser("ls", help="the dead letters of one subscription (topic and group)")
    show = commands.add_parser("show", help="one dead letter with its headers and body")
    show.add_argument("message_id", help="the dead letter's message id (from `bento dlq ls`)")
    for command in (ls, show):
        command.add_argument("topic", help="the subscription's topic")
        command.add_argument("--group", help="the subscription's group (omit for a broadcast subscription)")
        command.add_argument("--limit", type=int, default=100, help="letters read (default 100)")
        command.add_argument("--json", action="store_true", help="JSON output (one object per line for ls)")
        command.add_argument(
            "--container",
            default=os.environ.get("BENTO_CONTAINER", DEFAULT_CONTAINER),
            help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
        )
    ls.set_defaults(func=_ls)
    show.set_defaults(func=_show)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


async def _letters(args: argparse.Namespace) -> list[DeadLetter]:
    from bento.infrastructure.container import shutdown

    container = load_container(args.container)
    try:
        bus = await container.message_bus()
        return list(await bus.dead_letters(args.topic, group=args.group, limit=args.limit))
    finally:
        await shutdown(container)


def summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "message_id": letter.message_id,
        "topic": letter.topic,
        "group": letter.group,
        "attempts": letter.attempts,
        "error_type": letter.error_type,
        "error_message": letter.error_message,
    }


async def _ls(args: argparse.Namespace) -> int:
    letters = await _letters(args)
    if not letters:
        print(f"no dead letters on {args.topic!r} (group {args.group!r})", file=sys.stderr)
    for letter in letters:
        if args.json:
            print(json.dumps(summary(letter)), flush=True)
        else:
            error = clipped(f"{letter.error_type}: {letter.error_message}", 100)
            print(f"{letter.message_id or '-':<36}  {letter.attempts:>3}  {error}")
    return 0


async def _show(args: argparse.Namespace) -> int:
    letters = await _letters(args)
    found = next((letter for letter in letters if letter.message_id == args.message_id), None)
    if found is None:
        raise DeadLetterNotFoundError(args.message_id, args.topic, args.group)
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
