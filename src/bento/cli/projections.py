"""`bento projections status|rebuild NAME`.

Projections live in a service's container (a `BentoContainer` subclass with a
provider per projection, as in `bento.examples.orders.container`). The commands import
it from `--container module:Class` (default: the `BENTO_CONTAINER` environment
variable, else the bare `BentoContainer`), build the configured event store and
checkpoint store from the usual settings, and close everything before returning.

`status` lists every checkpoint (projections, and outbox relays, which checkpoint in
the same store) with the store's head position and the lag. `rebuild NAME` clears
the projection's read models, resets its checkpoint and replays the whole store.
Stop the service's own runner of that projection first: two runners would race.
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
        commands.add_parser("rebuild", help="clear a projection's read models and replay every event"),
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
        names = set(_projection_providers(container))
        positions = await checkpoints.all()
        head = await store.last_position()
        rows = [
            {
                "name": name,
                "position": positions.get(name, 0),
                "head": head,
                "lag": max(head - positions.get(name, 0), 0),
                "kind": "projection" if name in names else "checkpoint",
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
    from bento.infrastructure.container import resolve, shutdown

    container = _load_container(args.container)
    try:
        found = _projection_providers(container)
        if args.name not in found:
            raise ProjectionNotFoundError(args.name, sorted(found), args.container)
        projection = await resolve(found[args.name])
        store = await resolve(container.event_store)
        checkpoints = await resolve(container.checkpoint_store)
        runner = ProjectionRunner(projection, store, checkpoints, codec=container.codec(), batch_size=args.batch_size)
        events = await runner.rebuild()
        status = await runner.status()
        print(f"rebuilt {args.name}: replayed {events} events, checkpoint at {status.position} (head {status.head})")
        return 0
    finally:
        await shutdown(container)
