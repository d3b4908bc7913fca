"""`bento health`: is every component of the service reachable from here?

Builds the service's container (`--container`, default `$BENTO_CONTAINER`) with the
service's settings (environment, `.env`, `config/bento.yaml`), opens every configured
component — the default bus and every named one, the event store, checkpoint and snapshot
stores, the inbox — checks each with a real round trip, closes them, and prints one line
per component. Exits 0 when every component is up, 1 when one is down, so it serves as a
container or cron probe. `--json` prints the same report as `/api/health`. It runs beside
the service and takes nothing from it: what the running process sees is `/readyz`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from bento.cli._stores import DEFAULT_CONTAINER, load_container


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "health", help="check every configured component (bus, stores, inbox); exit 1 when one is down"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds each component may take (default 5)")
    parser.add_argument(
        "--container",
        default=os.environ.get("BENTO_CONTAINER", DEFAULT_CONTAINER),
        help="the service's container, module:Class (default: $BENTO_CONTAINER or BentoContainer)",
    )
    parser.set_defaults(func=_health)


async def _health(args: argparse.Namespace) -> int:
    from bento.infrastructure.health import probe_health

    container = load_container(args.container)
    report = await probe_health(container, timeout=args.timeout)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        down = [c for c in report.components if not c.healthy]
        verdict = "healthy" if report.healthy else f"unhealthy ({len(down)} of {len(report.components)} down)"
        print(f"bento health: {verdict}")
        width = max(len(c.name) for c in report.components)
        for c in report.components:
            print(f"  {c.status:<4}  {c.name:<{width}}  {c.latency_ms:7.1f} ms  {c.detail}")
    return 0 if report.healthy else 1
