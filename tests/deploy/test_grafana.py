"""The Grafana dashboard queries only metrics and labels the sensor really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from node_sensor.metrics import REGISTRY
from tests.deploy.conftest import DEPLOY

DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
METRIC = re.compile(r"\bcoredump_agent_[A-Za-z0-9_:]*")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
TARGET_LABELS = {"node", "pod", "namespace", "job", "instance"}


def _exported() -> dict[str, set[str]]:
    """Every series name the registry exposes -> its labels (``le`` for histogram buckets)."""
    out: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # the registry's own index of its collectors
        for family in collector.describe():
            labels = set(getattr(collector, "_labelnames", ()))
            for suffix in SUFFIXES.get(family.type, ("",)):
                out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


EXPORTED = _exported()


def _queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key in ("expr", "definition") or (key == "query" and "coredump_agent_" in value)):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _panels(node: Any) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from _panels(panel)


def test_the_registry_is_read_correctly() -> None:
    assert "coredump_agent_processed_total" in EXPORTED
    assert EXPORTED["coredump_agent_score_bucket"] == {"le"}
    assert "outcome" in EXPORTED["coredump_agent_processed_total"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_in_every_panel_exists_in_the_code(path) -> None:  # type: ignore[no-untyped-def]
    dashboard = json.loads(path.read_text())
    queries = list(_queries(dashboard))
    used = {name for q in queries for name in METRIC.findall(q)}
    assert used, "the dashboard queries no coredump_agent metric"
    unknown = sorted(used - set(EXPORTED))
    assert not unknown, f"{path.name} queries metrics the code does not export: {unknown}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_label_a_query_groups_or_filters_by_exists(path) -> None:  # type: ignore[no-untyped-def]
    for query in _queries(json.loads(path.read_text())):
        allowed = set(TARGET_LABELS)
        for name in METRIC.findall(query):
            allowed |= EXPORTED.get(name, set())
        used = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", query) for label in group.split(",")}
        used |= set(re.findall(r"[{,]\s*([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", query))
        used.discard("")
        assert used <= allowed, f"{query}: unknown labels {sorted(used - allowed)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_covers_the_pipeline_and_is_portable(path) -> None:  # type: ignore[no-untyped-def]
    dashboard = json.loads(path.read_text())
    panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("description"), panel["title"]
    used = {name for p in panels for q in _queries(p) for name in METRIC.findall(q)}
    for topic in ("coredump_agent_processed_total", "coredump_agent_score_bucket", "coredump_agent_crash_group_size",
                  "coredump_agent_restart_events_total", "coredump_agent_handover_latency_seconds_bucket",
                  "coredump_agent_stored_bytes_total"):
        assert topic in used, f"no panel shows {topic}"
