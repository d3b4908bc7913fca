"""The `bento` command. Each subcommand lives in its own module with a
`register(subparsers)` function; `main` wires them in a fixed order."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Sequence

from bento.domain.errors import BentoError


def build_parser() -> argparse.ArgumentParser:
    from bento import __version__
    from bento.cli import asyncapi, config, demo, dlq, events, health, projections, run

    parser = argparse.ArgumentParser(prog="bento", description="Bento: hexagonal DDD messaging for Python services.")
    parser.add_argument("--version", action="version", version=f"bento {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (demo, run, config, events, projections, dlq, health, asyncapi):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bento.infrastructure.logging import configure_logging

    # One named stderr handler: a command that applies `service.log_level` (bento run)
    # replaces it rather than adding a second one, so no line is printed twice.
    configure_logging("DEBUG" if args.verbose else "WARNING")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result = func(args)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
    except BentoError as exc:
        print(f"bento: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`bento events tail | head`): stop quietly, and keep Python's
        # final flush of stdout from reporting the same broken pipe at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
