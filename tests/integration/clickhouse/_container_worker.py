"""One OS process appending through `BentoContainer`, configured by the environment only
(run as a script, prints one JSON line; it stays open `linger` seconds after its appends).
Like `_append_worker`, every task owns one stream and tries expected version
k = 0 .. rounds-1 whatever happened before, so across all processes exactly one attempt
per (stream, k) can win. A failure to start or to write (ConfigurationError,
WriterLeaseError) is reported in `errors` and ends that task."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bento.application.errors import BentoError, ConcurrencyError
from bento.infrastructure.container import BentoContainer, resolve, shutdown
from bento.testing.events import make_event


async def main(streams: int, rounds: int, start_at: float, linger: float) -> dict[str, object]:
    won: list[str] = []
    errors: list[str] = []
    conflicts = 0
    container = BentoContainer()
    try:
        store = await resolve(container.event_store)
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def writer(stream: str) -> None:
            nonlocal conflicts
            for k in range(rounds):
                event = make_event(k, key=stream)
                try:
                    await store.append(stream, [event], k)
                    won.append(event.message_id)
                except ConcurrencyError:
                    conflicts += 1
                except BentoError as exc:  # WriterLeaseError: this process may not write
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return

        await asyncio.gather(*(writer(f"s{n}") for n in range(streams)))
        await asyncio.sleep(linger)  # stay open (a single writer keeps its lease meanwhile)
    except BentoError as exc:  # ConfigurationError: the store refused to start
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await shutdown(container)
    return {"won": won, "conflicts": conflicts, "errors": errors}


if __name__ == "__main__":
    streams, rounds, start_at, linger = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(int(streams), int(rounds), float(start_at), float(linger)))))
