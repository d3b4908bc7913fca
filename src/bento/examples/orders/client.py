"""The orders service's client role: dispatch commands, ask queries, print the answers as JSON.

    python -m examples.orders.client

Everything runs in the workers (`examples.orders.service`); this process only talks to them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from bento import DomainError
from bento.examples.orders import application as app
from bento.examples.orders.service import Client


async def main(timeout: float = 30.0) -> dict[str, object]:
    client = Client()
    commands, queries = client.command_bus(), client.query_bus()
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    sku = f"tea-{order_id}"
    try:
        stock = await commands.dispatch(app.RestockProduct(sku=sku, quantity=10))
        placed = await commands.dispatch(
            app.PlaceOrder(order_id=order_id, customer="ann@example.com", sku=sku, quantity=3, unit_price=4.5)
        )
        await commands.dispatch(app.PayOrder(order_id=order_id, amount=13.5))
        try:
            await commands.dispatch(app.PayOrder(order_id=order_id, amount=1.0))
            refused = ""
        except DomainError as exc:  # the worker's DomainError, as itself
            refused = str(exc)
        summary = None
        async with asyncio.timeout(timeout):  # the projection is eventually consistent
            while summary is None or summary.status != "paid" or not summary.stock_reserved:
                await asyncio.sleep(0.1)
                summary = await queries.ask(app.GetOrder(order_id=order_id))
        return {
            "restocked": stock,
            "placed": placed,
            "refused": refused,
            "summary": summary.model_dump(),
        }
    finally:
        await client.shutdown_resources()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))))
