"""`bento demo`: run the orders example service (bento.examples.orders) and say how to explore it.

The data stays in `--data-dir` (default `.bento-demo/`, embedded ClickHouse when chdb is
installed), so `bento events …` and `bento projections …` can read it afterwards; the closing
lines print those commands. Each run adds fresh orders to the same data (`--reset` starts
over). On a broker, the run's exchange, keys or stream are removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import shutil
import uuid
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = ".bento-demo"
CONTAINER = "bento.examples.orders.container:OrdersContainer"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the orders demo (commands, events, projection, queries, a dead letter)"
    )
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"where the demo keeps its events, read models and checkpoints (default {DEFAULT_DATA_DIR}/)",
    )
    parser.add_argument("--reset", action="store_true", help="delete the data dir first and start from run 1")
    parser.add_argument("--keep", action="store_true", help="keep the broker resources this run created")
    parser.set_defaults(func=_run)


async def _run(args: argparse.Namespace) -> int:
    from bento.examples.orders.cleanup import cleanup_broker
    from bento.examples.orders.run import demo_settings, run_demo

    if not args.verbose:
        # The demo fails one subscriber on purpose and reports the dead letter itself.
        logging.getLogger("bento").setLevel(logging.CRITICAL)
    data_dir = await asyncio.to_thread(lambda: Path(args.data_dir).expanduser().resolve())
    if args.reset:
        await asyncio.to_thread(shutil.rmtree, data_dir, True)
    settings = demo_settings(str(data_dir), scope=uuid.uuid4().hex[:8])
    report = await run_demo(settings)
    bus = settings.default_event
    if bus.backend != "inprocess":
        if args.keep:
            print(f"\nKept this run's {bus.backend} resources (--keep).")
        else:
            done = await cleanup_broker(bus, report.subscriptions)
            if done:
                print(f"\nCleaned up: {done} (--keep keeps them).")
    _explore(settings, data_dir, report.order_ids)
    return 0 if report.orders and report.correlation_ok else 1


def _explore(settings: Any, data_dir: Path, order_ids: list[str]) -> None:
    """The closing lines: the exact commands that read what this run wrote."""
    if settings.event_store.backend != "clickhouse":
        print(
            "\nThe event store was the in-memory default, so nothing is left to explore: install the embedded "
            "engine (pip install 'bento-ddd[embedded]') and the demo keeps its data in --data-dir."
        )
        return
    shown = shlex.quote(_relative(data_dir))
    print(f"\nThe data is in {shown}/ (run the demo again to add to it, --reset to start over). Explore it:")
    print(f"  export EVENT_STORE__BACKEND=clickhouse CHECKPOINT_STORE__BACKEND=clickhouse CLICKHOUSE__PATH={shown}")
    print(f"  export BENTO_CONTAINER={CONTAINER}")
    print("  bento events tail -n 5")
    print(f"  bento events stream Order-{order_ids[0]}")
    print("  bento events query --type orders.order.placed --json")
    print("  bento projections status")
    print("  bento projections rebuild order_summary")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
