"""docs/grafana/bento-dashboard.json queries only metric names Bento exports at /metrics, and
shows every operational gauge."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bento.application import gauges
from bento.application.gauges import Gauges, Reading
from bento.infrastructure.prometheus import PrometheusMetrics, install_gauges, prometheus_name

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana" / "bento-dashboard.json"

#: PromQL words that look like identifiers but are no metric.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


async def _exported_names() -> set[str]:
    """Every sample name /metrics serves, from one of each recording (the same classes `bento run` uses)."""
    registry = CollectorRegistry()
    recorder = PrometheusMetrics(registry)
    recorder.sent("inprocess", "t")
    recorder.processed("inprocess", "t", "g", "m", "retry", 0.01, "E")
    recorder.processed("inprocess", "t", "g", "m", "dead", 0.01, "E")
    recorder.dead_lettered("inprocess", "t", "g", "E")
    sampled = Gauges()

    async def one_of_each() -> list[Reading]:
        return [Reading(name, tuple((k, "x") for k in keys), 1) for name, (_, _, keys) in gauges.GAUGES.items()]

    sampled.add("all", one_of_each)
    await sampled.refresh()
    install_gauges(sampled, registry)
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def _expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and query variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in {"expr", "definition"} or (key == "query" and node.get("type") == "query")
            if promql and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges, grouping clauses,
    strings and function calls removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in _KEYWORDS or match.group().startswith("$"):
            continue
        if text[max(match.start() - 1, 0)] == "$":  # a Grafana variable ($__rate_interval, $system)
            continue
        names.add(match.group())
    return names


def test_the_parser_finds_metric_names() -> None:
    expression = (
        "histogram_quantile(0.99, sum by (le, messaging_destination_name) "
        '(rate(messaging_process_duration_seconds_bucket{messaging_system=~"$system"}[$__rate_interval])))'
        " / on (job) group_left bento_outbox_lag"
    )
    assert metric_names(expression) == {"messaging_process_duration_seconds_bucket", "bento_outbox_lag"}
    assert metric_names("label_values(messaging_client_sent_messages_total, messaging_system)") == {
        "messaging_client_sent_messages_total"
    }


async def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = list(_expressions(dashboard))
    assert len(expressions) >= 10
    queried = set().union(*(metric_names(e) for e in expressions))
    exported = await _exported_names()
    assert queried - exported == set(), f"the dashboard queries names Bento does not export: {queried - exported}"
    # and it shows every operational gauge
    assert {prometheus_name(name) for name in gauges.GAUGES} <= queried
