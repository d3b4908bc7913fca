"""`bento run module:Container`: host a service's runtime (what `faststream run` is to FastStream).

Opens the container, starts everything it hosts (`container.runtime()`: command and query
consumers, subscriptions, the outbox relay, projections) and logs one line per piece. With
`--http HOST:PORT` it serves `/livez` (the process is alive), `/readyz` (200 once the runtime
started, every component it opened answers — each message bus, the command transport, the event
store, inbox and checkpoint store — and every projection and the relay caught up; 503 otherwise,
naming what is down; the body lists each component's state and the lag) and,
with prometheus-client installed (`bento[prometheus]`), `/metrics`: every bus's messaging
metrics and the runtime's lag, backlog and dead-letter gauges (sampled for the scrape) in the
Prometheus text format (bento.infrastructure.prometheus). `TELEMETRY__TRACING=console|otlp`
traces with the OpenTelemetry SDK (bento.infrastructure.tracing).
SIGTERM or SIGINT stops taking messages, lets in-flight handlers finish within the grace period
(`SERVICE__GRACE_PERIOD`), flushes the relay, closes connections and exits 0; a second signal
exits at once. A start-up failure is one line on stderr and exit code 1. `--reload` restarts
the process when a source file under the current directory changes (watchfiles).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from typing import Any

from dependency_injector import containers

from bento.application.errors import ConfigurationError
from bento.infrastructure import prometheus
from bento.infrastructure.container import shutdown
from bento.infrastructure.logging import configure_logging
from bento.infrastructure.runtime import Runtime
from bento.infrastructure.tracing import configure_tracing
from bento.managers.health import collect_health, readiness_checks

logger = logging.getLogger("bento.run")
#: Seconds each component's readiness check may take before it counts as down.
READY_TIMEOUT = 2.0


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="host a service: bento run module:Container")
    parser.add_argument("target", help="the container class, as module:Class (the current directory is importable)")
    parser.add_argument("--http", metavar="HOST:PORT", help="serve /livez and /readyz on this address")
    parser.add_argument("--reload", action="store_true", help="restart when a source file changes (development)")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    _log_to_stderr()
    if args.reload:
        return _reload(args)
    try:
        container_class = load_target(args.target)
    except ConfigurationError as exc:
        print(f"bento run: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(container_class, http=args.http))


def _log_to_stderr(level: str = "INFO") -> None:
    """stderr logging at `level` (`service.log_level` once the settings are read), text or JSON
    (`BENTO_LOG_FORMAT`); `bento run`'s own lines (starting, ready, stopped) stay at INFO."""
    configure_logging(level)
    logger.setLevel(logging.INFO)


def load_target(target: str) -> Any:
    """The container class (or instance) `module:Name` names, the current directory first on sys.path."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError([f"target {target!r} must be module:Container"])
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError([f"cannot import {module_name!r}: {exc}"]) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigurationError([f"module {module_name!r} has no {attribute!r}"])
    return found


async def serve(container_class: Any, *, http: str | None = None) -> int:
    """Run until a signal; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(number: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.info("second %s: exiting now", signal.Signals(number).name)
            os._exit(130)
        logger.info("%s: stopping (a second signal exits at once)", signal.Signals(number).name)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)
    container = container_class() if isinstance(container_class, type) else container_class
    state: dict[str, Any] = {"runtime": None, "container": container, "metrics": _metrics() if http else None}
    if state["metrics"] is not None:
        state["metrics"].watch(container)  # seed 003's bus counters (bento_bus_*) on /metrics
    server = await _http_server(http, state) if http else None
    try:
        settings = container.settings()
        _log_to_stderr(settings.service.log_level)
        logger.info("service %s: starting", settings.service.name)
        state["tracer_provider"] = configure_tracing(settings.telemetry.tracing, settings.service.name)
        runtime: Runtime = await container.runtime()
        state["runtime"] = runtime
        if state["metrics"] is not None:
            prometheus.install_gauges(runtime.gauges)
        for line in runtime.lines:
            logger.info(line)
        if settings.health.enabled:  # seed 003's health-check topic (HEALTH__…), on the default bus
            await container.health_checks()
            logger.info("health-check topic %r: every %gs, max age %gs", *_health_line(settings.health))
        logger.info("ready: %d piece(s) running; SIGTERM or Ctrl-C stops", len(runtime.lines))
    except Exception as exc:
        print(f"bento run: cannot start: {_one_line(exc)}", file=sys.stderr)
        await _close_quietly(container)
        return 1
    await stop.wait()
    link = container.command_link()
    grace = settings.service.grace_period
    try:
        async with asyncio.timeout(grace):
            await shutdown(container)
    except TimeoutError:
        logger.error("handlers did not finish within the %gs grace period; exiting", grace)
        return 1
    finally:
        if server is not None:
            server.close()
        if state.get("tracer_provider") is not None:
            state["tracer_provider"].shutdown()  # flushes the spans still batched
    if link is not None:
        logger.info("redeliveries absorbed by the inbox: %d", link.redeliveries_absorbed)
    logger.info("stopped")
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "…"


async def _close_quietly(container: containers.Container) -> None:
    try:
        await shutdown(container)
    except Exception as exc:
        logger.debug("closing after a failed start: %s", exc)


async def _http_server(address: str, state: dict[str, Any]) -> asyncio.Server:
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigurationError([f"--http {address!r} must be HOST:PORT"]) from None

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            content_type = "application/json"
            if path == "/metrics" and state.get("metrics") is not None:
                runtime = state.get("runtime")
                if runtime is not None:  # the lag and backlog gauges, sampled now (shared by concurrent scrapes)
                    await runtime.gauges.refresh(max_age=1.0)
                status, payload, content_type = 200, state["metrics"].exposition(), prometheus.CONTENT_TYPE
            else:
                status, body = await _probe(path, state.get("runtime"), state.get("container"))
                payload = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except Exception as exc:  # a bad probe must not touch the service
            logger.debug("health request failed: %s", exc)
        finally:
            writer.close()

    return await asyncio.start_server(answer, host or "0.0.0.0", number)


def _health_line(health: Any) -> tuple[str, float, float]:
    return health.topic, health.interval, health.max_age


def _metrics() -> prometheus.PrometheusMetrics | None:
    try:
        return prometheus.install()
    except ImportError as exc:
        logger.info("no /metrics: %s", exc)
        return None


async def _probe(
    path: str, runtime: Runtime | None, container: containers.Container | None
) -> tuple[int, dict[str, Any]]:
    if path == "/livez":
        return 200, {"alive": True}
    if path == "/metrics":
        return 404, {"error": "/metrics needs prometheus-client: pip install 'bento-ddd[prometheus]'"}
    if path != "/readyz":
        return 404, {"error": "try /livez, /readyz or /metrics"}
    if runtime is None or not runtime.started or container is None:
        return 503, {"ready": False, "reason": "starting"}
    report = await collect_health(container, timeout=READY_TIMEOUT, checks=readiness_checks(container))
    components = {
        c.name: {"status": c.status, "latency_ms": round(c.latency_ms, 3), "detail": c.detail}
        for c in report.components
    }
    problems: list[str] = []
    try:
        lag = await runtime.lag()
    except Exception as exc:
        lag = {}
        problems.append(_one_line(exc))
    down = sorted(c.name for c in report.components if not c.healthy)
    if down:
        problems.insert(0, f"down: {', '.join(down)}")
    ready = not problems and not any(lag.values())
    body: dict[str, Any] = {"ready": ready}
    if problems:
        body["reason"] = "; ".join(problems)
    body.update(lag=lag, components=components)
    return (200 if ready else 503), body


def _reload(args: argparse.Namespace) -> int:
    try:
        from watchfiles import PythonFilter, run_process
    except ImportError:
        print("bento run: --reload needs watchfiles: pip install 'bento-ddd[run]'", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "bento.cli", "run", args.target] + (["--http", args.http] if args.http else [])
    logger.info("watching *.py under %s for changes", os.getcwd())
    # Python files only: a log file written under the directory would restart it in a loop.
    run_process(os.getcwd(), target=" ".join(command), target_type="command", watch_filter=PythonFilter())
    return 0
