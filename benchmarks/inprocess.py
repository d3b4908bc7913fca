"""In-process bus overhead: CommandBus and EventBus against a bare `await handler(x)` loop.

Run: .venv/bin/python benchmarks/inprocess.py [--commands 200000] [--events 100000]
Prints commands/s and events/s for each variant and the ratio to the bare loop; the
last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bento.application.buses import CommandBus, EventBus
from bento.application.handlers import CommandHandler
from bento.application.messages import Command
from bento.domain.events import DomainEvent


class Increment(Command):
    amount: int = 1


class Incremented(DomainEvent, name="bench.incremented"):
    amount: int = 1


class IncrementHandler(CommandHandler[Increment, int]):
    def __init__(self) -> None:
        self.total = 0

    async def handle(self, command: Increment) -> int:
        self.total += command.amount
        return self.total


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, event: Incremented) -> None:
        self.count += 1


async def rate(n: int, step: Callable[[Any], Awaitable[Any]], message: Any) -> float:
    """Messages per second for `n` awaits of `step(message)`."""
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        await step(message)
    return n / (time.perf_counter() - started)


Variant = tuple[Callable[[Any], Awaitable[Any]], Any]


async def best_of(rounds: int, n: int, variants: dict[str, Variant]) -> dict[str, float]:
    """Best rate per variant; variants alternate within each round so machine noise
    hits them alike (the ratios are what matter)."""
    best = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, (step, message) in variants.items():
            best[name] = max(best[name], await rate(n, step, message))
    return best


async def main(commands: int, events: int) -> dict[str, float]:
    command = Increment()
    handler = IncrementHandler()
    plain = CommandBus(middleware=[])
    plain.register(IncrementHandler())
    full = CommandBus()  # default middleware: correlation propagation + failure logging
    full.register(IncrementHandler())
    rates = await best_of(
        5,
        commands // 2,
        {"bare": (handler.handle, command), "bus": (plain.dispatch, command), "full": (full.dispatch, command)},
    )
    bare_commands, bus_commands, bus_commands_mw = rates["bare"], rates["bus"], rates["full"]

    event = Incremented()
    bare_handlers = [Counter(), Counter(), Counter()]

    async def bare_fan_out(e: Incremented) -> None:
        for h in bare_handlers:
            await h(e)

    event_bus = EventBus()
    for _ in range(3):
        event_bus.add_subscriber(Incremented, Counter(), name="counter")
    rates = await best_of(5, events // 2, {"bare": (bare_fan_out, event), "bus": (event_bus.publish, event)})
    bare_events, bus_events = rates["bare"], rates["bus"]

    figures = {
        "bare_commands_per_s": round(bare_commands),
        "commands_per_s": round(bus_commands),
        "commands_with_middleware_per_s": round(bus_commands_mw),
        "bare_events_per_s": round(bare_events),
        "events_per_s": round(bus_events),
        "commands_ratio_to_bare": round(bus_commands / bare_commands, 3),
        "commands_with_middleware_ratio_to_bare": round(bus_commands_mw / bare_commands, 3),
        "events_ratio_to_bare": round(bus_events / bare_events, 3),
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    result = asyncio.run(main(args.commands, args.events))
    print(f"bare loop           {result['bare_commands_per_s']:>12,} commands/s")
    print(
        f"CommandBus          {result['commands_per_s']:>12,} commands/s  "
        f"({result['commands_ratio_to_bare']:.0%} of bare; target >= 35%)"
    )
    print(
        f"CommandBus + mw     {result['commands_with_middleware_per_s']:>12,} commands/s  "
        f"({result['commands_with_middleware_ratio_to_bare']:.0%} of bare; target >= 15%)"
    )
    print(f"bare 3-handler loop {result['bare_events_per_s']:>12,} events/s")
    print(
        f"EventBus (3 subs)   {result['events_per_s']:>12,} events/s  "
        f"({result['events_ratio_to_bare']:.0%} of bare; target >= 25%)"
    )
    print(json.dumps(result))
