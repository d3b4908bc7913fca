"""`bento projections status|rebuild NAME`.

Projections live in a service's container (a `BentoContainer` subclass with a
provider per projection, as in `examples/orders/container.py`). The commands import
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
import importlib
import os
from typing import Any

from bento.domain.errors import BentoError

DEFAULT_CONTAINER = "bento.infrastructure.container:BentoContainer"


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
    commands.choices["status"].set_defaults(func=_status)
    rebuild = commands.choices["rebuild"]
    rebuild.add_argument("name", help="the projection's name (its checkpoint name)")
    rebuild.add_argument("--batch-size", type=int, default=10_000, help="events read per batch (default 10000)")
    rebuild.set_defaults(func=_rebuild)
    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _load_container(path: str) -> Any:
    """Import `module:attr`: a container class or instance, or a function returning one."""
    from dependency_injector import containers

    from bento.application.errors import ConfigurationError

    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigurationError([f"--container / BENTO_CONTAINER must look like module:Class, got {path!r}"])
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError([f"cannot import the container {path}: {exc}"]) from exc
    if callable(target) and not isinstance(target, type | containers.Container):
        target = target()  # a factory function
    if isinstance(target, type) and issubclass(target, containers.DeclarativeContainer):
        return target()
    if isinstance(target, containers.Container):
        return target
    raise ConfigurationError([f"{path} is not a dependency-injector container (got {type(target).__name__})"])


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
        store = await resolve(container.event_store)
        checkpoints = await resolve(container.checkpoint_store)
        names = set(_projection_providers(container))
        positions = await checkpoints.all()
        head = await store.last_position()
        rows = [(name, positions.get(name, 0), name in names) for name in sorted(names | set(positions))]
        if not rows:
            print(f"no projections or checkpoints yet (event store head: {head})")
            return 0
        width = max(len(r[0]) for r in rows)
        print(f"{'NAME':<{width}}  {'POSITION':>10}  {'HEAD':>10}  {'LAG':>10}  KIND")
        for name, position, is_projection in rows:
            kind = "projection" if is_projection else "checkpoint"
            print(f"{name:<{width}}  {position:>10}  {head:>10}  {max(head - position, 0):>10}  {kind}")
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
