"""`bento projections status|rebuild NAME`.

Projections live in a service's container (a `BentoContainer` subclass with a
provider per projection, as in `bento.examples.orders.container`). The commands import
it from `--container module:Class` (default: the `BENTO_CONTAINER` environment
variable, else the bare `BentoContainer`), build the configured event store and
checkpoint store from the usual settings, and close everything before returning.

`status` lists every checkpoint (projections, and outbox relays, which checkpoint in
the same store) with the store's head position and the lag. `rebuild NAME` builds a
new version of the projection's read models beside the serving one and switches to it
when it has caught up (`bento.application.rebuild`): queries keep reading the old version
meanwhile, Ctrl-C leaves it serving and the next `rebuild` resumes. Progress goes to
stderr every few seconds. `--in-place` is the old way (clear, then replay; stop the
service's runner first) for read models that cannot hold a second version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bento.cli._stores import DEFAULT_CONTAINER, empty_hint, require_event_store
from bento.cli._stores import load_container as _load_container
from bento.domain.errors import BentoError


class ProjectionNotFoundError(BentoError, LookupError):
    """`rebuild NAME` names no projection of the container."""

    def __init__(self, name: str, known: list[str], container: str) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(
            f"no projection named {name!r} in {container} (known: {listed}); pass the service's container "
            "with --container module:Class or BENTO_CONTAINER"
        )
        self.name, self.known = name, known


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("projections", help="inspect and rebuild projections")
    commands = parser.add_subparsers(dest="projections_command", metavar="SUBCOMMAND")
    for command in (
        commands.add_parser("status", help="checkpoint, head position and lag of every projection and relay"),
        commands.add_parser(
            "rebuild", help="replay every event into a new version of a projection's read models, then switch"
        ),
    ):
        command.add_argument(
            "--container",
            default=os.environ.get("BENTO_CONTAINER", DEFAULT_CONTAINER),
            help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
        )
    status = commands.choices["status"]
    status.add_argument("--json", action="store_true", help="one JSON object per projection or checkpoint")
    status.set_defaults(func=_status)
    rebuild = commands.choices["rebuild"]
    rebuild.add_argument("name", help="the projection's name (its checkpoint name)")
    rebuild.add_argument("--batch-size", type=int, default=10_000, help="events read per batch (default 10000)")
    rebuild.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    rebuild.add_argument(
        "--restart", action="store_true", help="discard an interrupted rebuild's new version and start from zero"
    )
    rebuild.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr (default 2)",
    )
    rebuild.add_argument(
        "--in-place",
        action="store_true",
        help="clear the serving read models and replay into them (queries see partial data; stop the runner first)",
    )
    rebuild.set_defaults(func=_rebuild)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _projection_providers(container: Any) -> dict[str, Any]:
    """The container's providers of Projection subclasses, by projection name."""
    from dependency_injector import providers

    from bento.application.projections import Projection

    found: dict[str, Any] = {}
    for provider in container.traverse(types=[providers.Factory, providers.Singleton]):
        cls = getattr(provider, "cls", None)
        if isinstance(cls, type) and issubclass(cls, Projection):
            found[cls.name] = provider
    return found


async def _status(args: argparse.Namespace) -> int:
    from bento.infrastructure.container import resolve, shutdown

    container = _load_container(args.container)
    try:
        await require_event_store(container)
        store = await resolve(container.event_store)
        checkpoints = await resolve(container.checkpoint_store)
        from bento.application.projection_switch import ACK_SUFFIX, PAUSE_SUFFIX
        from bento.application.rebuild import REBUILD_SUFFIX

        names = set(_projection_providers(container))
        # A rebuild's own checkpoint shows while one is under way or interrupted (0: none); the
        # pause request and answer of a switch (bento.application.projection_switch) never do.
        positions = {
            name: position
            for name, position in (await checkpoints.all()).items()
            if (position or not name.endswith(REBUILD_SUFFIX)) and not name.endswith((PAUSE_SUFFIX, ACK_SUFFIX))
        }
        head = await store.last_position()
        rows = [
            {
                "name": name,
                "position": positions.get(name, 0),
                "head": head,
                "lag": max(head - positions.get(name, 0), 0),
                "kind": "projection" if name in names else "rebuild" if name.endswith(REBUILD_SUFFIX) else "checkpoint",
            }
            for name in sorted(names | set(positions))
        ]
        if args.json:
            for row in rows:
                print(json.dumps(row), flush=True)
        elif rows:
            width = max(len(str(r["name"])) for r in rows)
            print(f"{'NAME':<{width}}  {'POSITION':>10}  {'HEAD':>10}  {'LAG':>10}  KIND")
            for r in rows:
                print(f"{r['name']:<{width}}  {r['position']:>10}  {r['head']:>10}  {r['lag']:>10}  {r['kind']}")
        if not rows:
            print(
                empty_hint(container, f"no projections or checkpoints yet (event store head: {head})"), file=sys.stderr
            )
        return 0
    finally:
        await shutdown(container)


async def _rebuild(args: argparse.Namespace) -> int:
    from bento.application.projections import ProjectionRunner
    from bento.application.rebuild import ProjectionRebuild
    from bento.infrastructure.container import resolve, shutdown

    container = _load_container(args.container)
    try:
        found = _projection_providers(container)
        if args.name not in found:
            raise ProjectionNotFoundError(args.name, sorted(found), args.container)
        projection = await resolve(found[args.name])
        store = await resolve(container.event_store)
        checkpoints = await resolve(container.checkpoint_store)
        if args.in_place:
            runner = ProjectionRunner(
                projection, store, checkpoints, codec=container.codec(), batch_size=args.batch_size
            )
            events = await runner.rebuild()
            status = await runner.status()
            print(f"rebuilt {args.name} in place: replayed {events} events, checkpoint at {status.position}")
            return 0
        rebuild = ProjectionRebuild(
            projection,
            store,
            checkpoints,
            codec=container.codec(),
            batch_size=args.batch_size,
            on_progress=ProgressPrinter(sys.stderr),
            progress_interval=args.progress_interval,
        )
        result = await _run_until_signalled(rebuild, restart=args.restart)
        if args.json:
            print(json.dumps(result.as_dict()), flush=True)
        elif result.switched:
            print(
                f"rebuilt {args.name}: replayed {result.events} events into a new version and switched to it "
                f"(checkpoint at {result.position}, head {result.head}, {result.seconds:.1f} s)"
            )
        return 0 if result.switched else 130
    finally:
        await shutdown(container)


async def _run_until_signalled(rebuild: Any, *, restart: bool) -> Any:
    """Run the rebuild with SIGINT/SIGTERM asking it to stop between batches (the switch,
    once begun, finishes) instead of tearing the event loop down."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        return await rebuild.run(stop=stop, restart=restart)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


class ProgressPrinter:
    """Writes RebuildProgress to a stream: one line rewritten in place on a terminal,
    a plain line per report otherwise (logs, CI)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._open_line = False

    def __call__(self, progress: Any) -> None:
        p = progress
        if p.phase == "starting":
            line = (
                f"rebuild {p.name}: resuming the interrupted rebuild at position {p.resumed_from:,} of {p.head:,}"
                if p.resumed_from
                else f"rebuild {p.name}: building a new version beside the serving one ({p.head:,} events)"
            )
        elif p.phase == "replaying":
            percent = 100.0 * p.done / p.total if p.total else 100.0
            eta = "?" if p.eta is None else _duration(p.eta)
            line = (
                f"rebuild {p.name}: {p.done:,}/{p.total:,} events ({percent:.1f}%), {p.rate:,.0f} events/s, ETA {eta}"
            )
            if self.tty:
                self.stream.write(f"\r{line}\x1b[K")
                self._open_line = True
                self.stream.flush()
                return
        elif p.phase == "pausing":
            line = (
                f"rebuild {p.name}: caught up at position {p.position:,}; asking the service's runner of "
                f"{p.name} to pause for the switch"
            )
        elif p.phase == "switching":
            line = f"rebuild {p.name}: switching to the new version"
        elif p.phase == "interrupted":
            line = (
                f"rebuild {p.name}: stopped at position {p.position:,} of {p.head:,}; the old version keeps "
                "serving, run the same command to resume"
            )
        else:
            line = f"rebuild {p.name}: done, {p.done:,} events in {_duration(p.elapsed)}"
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        print(line, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
