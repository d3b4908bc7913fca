"""CommandBusContract: what a remote CommandBus/QueryBus does over one MessageBus transport.

Subclass it as `Test<Adapter>` and provide a `transport` fixture: a callable returning an async
context manager that opens a started MessageBus (a new connection each call, as separate
processes would have; the in-process bus hands out one shared bus). Each test uses its own
topic prefix, so runs against a shared broker never collide.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import pytest

from bento.application.errors import (
    CommandTimeoutError,
    HandlerNotFoundError,
    MalformedReplyError,
    RemoteHandlerError,
)
from bento.application.handlers import CommandHandler, QueryHandler
from bento.application.messages import Command, Query
from bento.application.ports.message_bus import MessageBus
from bento.application.remote import REPLY_TO_HEADER, RemoteCommandBus, RemoteQueryBus, Reply, RequestReply
from bento.domain.errors import DomainError
from bento.domain.events import DomainEvent
from bento.domain.metadata import MessageMetadata

Transport = Callable[[], AbstractAsyncContextManager[MessageBus]]


class ContractGreet(Command, name="bento.testing.contract.greet"):
    who: str


class ContractJob(Command, name="bento.testing.contract.job"):
    seq: int


class ContractCount(Query, name="bento.testing.contract.count"):
    word: str


class ContractOutOfStock(DomainError, name="bento.testing.contract.out_of_stock"):
    """A registered DomainError: crosses as itself."""


class ContractEcho(DomainEvent, name="bento.testing.contract.echo"):
    note: str


class _Greeter(CommandHandler[ContractGreet, dict[str, Any]]):
    def __init__(self) -> None:
        self.seen: list[ContractGreet] = []
        self.echo: ContractEcho | None = None

    async def handle(self, command: ContractGreet) -> dict[str, Any]:
        self.seen.append(command)
        if command.who == "out":
            raise ContractOutOfStock("tea: 3 wanted, 1 in stock")
        if command.who == "plain":
            raise DomainError("a plain domain error")
        if command.who == "bug":
            raise KeyError("missing")
        if command.who.startswith("slow"):
            await asyncio.sleep(0.05)
        self.echo = ContractEcho(note=command.who)  # created while handling: inherits correlation
        return {"hello": command.who, "n": len(self.seen)}


class _Jobs(CommandHandler[ContractJob, None]):
    def __init__(self) -> None:
        self.attempts: dict[int, int] = {}
        self.done = asyncio.Event()

    async def handle(self, command: ContractJob) -> None:
        self.attempts[command.seq] = self.attempts.get(command.seq, 0) + 1
        if self.attempts[command.seq] == 1:
            raise RuntimeError("first attempt fails")
        self.done.set()


class _Counter(QueryHandler[ContractCount, int]):
    async def handle(self, query: ContractCount) -> int:
        return len(query.word)


class CommandBusContract:
    """The remote CommandBus/QueryBus promises, as tests. Subclasses provide `transport`."""

    @pytest.fixture
    def prefix(self) -> str:
        return f"c{uuid.uuid4().hex[:10]}."

    @pytest.fixture
    async def stack(self) -> AsyncIterator[AsyncExitStack]:
        async with AsyncExitStack() as stack:
            yield stack

    def _link(self, transport: Transport, prefix: str, service: str, stack: AsyncExitStack) -> RequestReply:
        link = RequestReply(transport, service=service, timeout=10.0, topic_prefix=prefix)
        stack.push_async_callback(link.close)
        return link

    async def _worker(
        self, transport: Transport, prefix: str, stack: AsyncExitStack, service: str = "worker"
    ) -> tuple[RemoteCommandBus, _Greeter]:
        bus = RemoteCommandBus(self._link(transport, prefix, service, stack))
        greeter = _Greeter()
        bus.register(greeter)
        await bus.serve_all()
        return bus, greeter

    def _caller(self, transport: Transport, prefix: str, stack: AsyncExitStack) -> RemoteCommandBus:
        return RemoteCommandBus(self._link(transport, prefix, "caller", stack))

    async def test_dispatch_runs_the_remote_handler_and_returns_its_result(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        _, greeter = await self._worker(transport, prefix, stack)
        caller = self._caller(transport, prefix, stack)
        assert await caller.dispatch(ContractGreet(who="ann")) == {"hello": "ann", "n": 1}
        assert [c.who for c in greeter.seen] == ["ann"]

    async def test_metadata_crosses_unchanged(self, transport: Transport, prefix: str, stack: AsyncExitStack) -> None:
        _, greeter = await self._worker(transport, prefix, stack)
        caller = self._caller(transport, prefix, stack)
        metadata = MessageMetadata(
            correlation_id="corr-1", causation_id="cause-1", tenant_id="t-7", trace_context={"traceparent": "00-ab"}
        )
        command = ContractGreet(who="meta", metadata=metadata)
        await caller.dispatch(command)
        seen = greeter.seen[0]
        assert seen.message_id == command.message_id
        assert (seen.metadata.correlation_id, seen.metadata.causation_id, seen.metadata.tenant_id) == (
            "corr-1",
            "cause-1",
            "t-7",
        )
        assert seen.metadata.trace_context == {"traceparent": "00-ab"}
        assert greeter.echo is not None and greeter.echo.metadata.correlation_id == "corr-1"
        assert greeter.echo.metadata.causation_id == command.message_id

    async def test_a_registered_domain_error_comes_back_as_itself(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        await self._worker(transport, prefix, stack)
        caller = self._caller(transport, prefix, stack)
        with pytest.raises(ContractOutOfStock, match="tea: 3 wanted, 1 in stock"):
            await caller.dispatch(ContractGreet(who="out"))
        with pytest.raises(DomainError, match="a plain domain error") as plain:
            await caller.dispatch(ContractGreet(who="plain"))
        assert type(plain.value) is DomainError

    async def test_another_exception_is_a_remote_handler_error(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        await self._worker(transport, prefix, stack, service="billing")
        caller = self._caller(transport, prefix, stack)
        with pytest.raises(RemoteHandlerError) as raised:
            await caller.dispatch(ContractGreet(who="bug"))
        assert raised.value.remote_type == "builtins.KeyError"
        assert raised.value.service == "billing" and "missing" in raised.value.remote_message

    async def test_no_consumer_is_a_timeout_naming_command_topic_and_limit(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        caller = self._caller(transport, prefix, stack)
        await caller.link.transport()
        started = asyncio.get_running_loop().time()
        with pytest.raises(CommandTimeoutError) as raised:
            await caller.dispatch(ContractGreet(who="nobody"), timeout=0.5)
        assert asyncio.get_running_loop().time() - started < 5.0
        assert raised.value.command == ContractGreet.__wire_name__
        assert raised.value.destination == prefix + ContractGreet.__wire_name__ and raised.value.timeout == 0.5

    async def test_an_abstract_command_is_refused_at_the_caller(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        caller = self._caller(transport, prefix, stack)
        with pytest.raises(TypeError, match="abstract"):
            await caller.dispatch(Command())

    async def test_a_command_of_another_type_on_the_topic_is_refused_typed(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        await self._worker(transport, prefix, stack)
        caller = self._caller(transport, prefix, stack)
        link = caller.link
        # A foreign producer puts a job on the greet topic: the worker refuses it, typed.
        link.topic_of = lambda message: prefix + ContractGreet.__wire_name__  # type: ignore[method-assign]
        with pytest.raises(HandlerNotFoundError):
            await caller.dispatch(ContractJob(seq=1))

    async def test_a_malformed_reply_is_a_typed_error(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        fake = await stack.enter_async_context(transport())

        async def answer_badly(message: DomainEvent) -> None:
            bad = Reply(in_reply_to=message.message_id, ok=False)  # an error naming no error type
            await fake.publish(message.metadata.headers[REPLY_TO_HEADER], bad)  # type: ignore[arg-type]

        topic = prefix + ContractGreet.__wire_name__
        native = getattr(fake, "request_reply", None)
        if native is not None:  # the caller will use the broker's own request/reply

            async def answer_natively(message: DomainEvent) -> DomainEvent:
                return Reply(in_reply_to=message.message_id, ok=False)  # type: ignore[return-value]

            await native.serve(topic, answer_natively, group="fake-worker")
        else:
            await fake.subscribe(topic, answer_badly, group="fake-worker")
        caller = self._caller(transport, prefix, stack)
        with pytest.raises(MalformedReplyError):
            await caller.dispatch(ContractGreet(who="x"))

    async def test_concurrent_dispatches_each_get_their_own_result(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        await self._worker(transport, prefix, stack)
        caller = self._caller(transport, prefix, stack)
        names = [f"slow-{n}" for n in range(50)]
        results = await asyncio.gather(*(caller.dispatch(ContractGreet(who=name)) for name in names))
        assert [r["hello"] for r in results] == names

    async def test_competing_workers_run_each_command_once(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        _, first = await self._worker(transport, prefix, stack, service="w1")
        _, second = await self._worker(transport, prefix, stack, service="w2")
        caller = self._caller(transport, prefix, stack)
        commands = [ContractGreet(who=f"slow-{n}") for n in range(30)]
        await asyncio.gather(*(caller.dispatch(c) for c in commands))
        handled = [c.message_id for c in first.seen + second.seen]
        assert sorted(handled) == sorted(c.message_id for c in commands)

    async def test_send_is_retried_by_the_transport(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        worker = RemoteCommandBus(self._link(transport, prefix, "jobs", stack))
        jobs = _Jobs()
        worker.register(jobs)
        await worker.serve_all()
        caller = self._caller(transport, prefix, stack)
        await caller.send(ContractJob(seq=7))
        async with asyncio.timeout(20):
            await jobs.done.wait()
        assert jobs.attempts[7] == 2

    async def test_ask_answers_from_the_remote_query_handler(
        self, transport: Transport, prefix: str, stack: AsyncExitStack
    ) -> None:
        server = RemoteQueryBus(self._link(transport, prefix, "reader", stack))
        server.register(_Counter())
        await server.serve_all()
        asker = RemoteQueryBus(self._link(transport, prefix, "asker", stack))
        assert await asker.ask(ContractCount(word="bento")) == 5
