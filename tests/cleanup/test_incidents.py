"""Restart counts per instance within the window, and incident keys that follow a crash loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coredumps.cleanup import incident_key, incident_start, loop_start, restart_count, tally_restarts
from coredumps.config import load_config
from coredumps.db import RestartEvent
from tasks.runtime import sessions_for

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


@pytest.mark.parametrize(("minutes_ago", "start"), [
    ([5], 5),
    ([50, 30, 10], 50),
    ([200, 150, 100, 50, 10], 200),
    ([300, 100, 50, 10], 100),
    ([130, 61, 0.5], 0.5),
])
def test_a_crash_loop_starts_after_the_last_quiet_window(minutes_ago: list[float], start: float) -> None:
    times = sorted(at(m) for m in minutes_ago)
    assert loop_start(times, HOUR) == at(start)


def test_incident_key_names_the_instance_and_first_restart() -> None:
    assert incident_key("default", "my-release", at(30)) == "default/my-release@2026-11-26T11:30:00.000000Z"
    long_key = incident_key("ns", "x" * 300, at(30))
    assert len(long_key) < 255 and long_key.startswith("sha256:")


def _sessions(agent_config: Callable[..., Path]):  # type: ignore[no-untyped-def]
    return sessions_for(load_config(agent_config()))


def _restart(instance: str | None, minutes_ago: float, *, namespace: str = "default", finished: bool = True,
             n: int = 0) -> RestartEvent:
    when = at(minutes_ago)
    return RestartEvent(node_name=f"node-{n % 3}", namespace=namespace, pod_name="p", pod_uid=f"uid-{instance}-{n}",
                        container_name="c", instance_name=instance, restart_count=n,
                        finished_at=when if finished else None,
                        detected_at=when + timedelta(seconds=2) if finished else when)


def test_restarts_are_counted_per_instance_within_the_window_from_every_node(
    agent_config: Callable[..., Path],
) -> None:
    sessions = _sessions(agent_config)
    with sessions() as session:
        session.add_all([
            *(_restart("a", m, n=i) for i, m in enumerate([1, 10, 20, 59])),
            _restart("a", 61, n=10),
            _restart("a", 5, namespace="other", n=11),
            _restart("b", 3, finished=False, n=12),
            _restart(None, 3, n=13),
        ])
        session.commit()
    tallies = tally_restarts(sessions, HOUR, NOW)
    assert [(t.namespace, t.instance, t.count) for t in tallies] == [
        ("default", "a", 4), ("default", "b", 1), ("other", "a", 1)]
    assert tallies[0].first == at(59) and tallies[0].last == at(1)
    assert restart_count(sessions, "default", "a", HOUR, NOW) == 4
    assert restart_count(sessions, "default", "missing", HOUR, NOW) == 0


def test_a_continuing_loop_keeps_its_incident_while_old_restarts_age_out(agent_config: Callable[..., Path]) -> None:
    sessions = _sessions(agent_config)
    with sessions() as session:
        session.add_all(_restart("a", m, n=i) for i, m in enumerate(range(0, 180, 20)))
        session.commit()
    tally = tally_restarts(sessions, HOUR, NOW)[0]
    assert tally.first == at(60)
    assert incident_start(sessions, tally, HOUR, previous_start=None) == at(60)
    assert incident_start(sessions, tally, HOUR, previous_start=at(160)) == at(160)
