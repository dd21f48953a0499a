"""PodWatcher against the fake API server: restarts reported once through watches, 410s and outages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from coredumps.kube import KubeClient, PodWatcher
from coredumps.kube.pods import Restart
from tests.kube.conftest import HELM_POD, NODE, WAIT, Recorder
from tests.kubefake import FakeKubeServer

pytestmark = pytest.mark.timeout(60)
CAUGHT_UP = {(HELM_POD, "standalone", 3), ("web-6b7f9c5d8-kx7tz", "nginx", 1)}
"""The latest restarts of this node's pods when the watcher starts."""


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watcher(seeded_server: FakeKubeServer, kube_client: KubeClient, recorder: Recorder) -> Iterator[PodWatcher]:
    watcher = PodWatcher(kube_client, NODE, recorder.on_restart, on_change=recorder.on_change,
                         on_sync=recorder.on_sync, watch_timeout=30, backoff_base=0.05, backoff_max=0.2)
    watcher.start()
    assert watcher.ready.wait(WAIT)
    assert recorder.next_sync() == 4
    initial = [recorder.changes.get_nowait() for _ in range(recorder.changes.qsize())]
    assert [kind for kind, _ in initial] == ["ADDED"] * 4
    caught_up = [recorder.restarts.get_nowait() for _ in range(recorder.restarts.qsize())]
    assert {(r.pod_name, r.container, r.restart_count) for r in caught_up} == CAUGHT_UP
    yield watcher
    watcher.stop()


def test_first_list_holds_this_nodes_pods_and_catches_up_on_their_latest_restarts(
        seeded_server: FakeKubeServer, kube_client: KubeClient, recorder: Recorder) -> None:
    # The crash-looping pod restarted while no watcher ran: its latest restart is reported, once.
    watcher = PodWatcher(kube_client, NODE, recorder.on_restart, on_change=recorder.on_change, backoff_base=0.05)
    watcher.start()
    try:
        assert watcher.ready.wait(WAIT)
        assert sorted(p["metadata"]["name"] for p in watcher.pods()) == [
            "my-milvus-milvus-standalone-7d9c8b6f4-q8m2p", "my-release-etcd-0", HELM_POD, "web-6b7f9c5d8-kx7tz"]
        caught_up = recorder.flush(seeded_server, "default", HELM_POD)
        assert sorted((r.pod_name, r.container, r.restart_count, r.exit_code) for r in caught_up) == [
            (HELM_POD, "standalone", 3, 139), ("web-6b7f9c5d8-kx7tz", "nginx", 1, 137)]
        assert recorder.flush(seeded_server, "default", HELM_POD) == []
        assert seeded_server.requests[0].query["fieldSelector"] == f"spec.nodeName={NODE}"
    finally:
        watcher.stop()


def test_a_restart_whose_recording_failed_is_offered_again(
        seeded_server: FakeKubeServer, kube_client: KubeClient, recorder: Recorder) -> None:
    failures = [RuntimeError("database is down")] * 2

    def flaky(restart: Restart, pod: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        recorder.on_restart(restart, pod)

    watcher = PodWatcher(kube_client, NODE, flaky, on_change=recorder.on_change, watch_timeout=1,
                         backoff_base=0.05)
    watcher.start()
    try:
        assert watcher.ready.wait(WAIT)  # the first catch-up fails, and so does its first retry
        seeded_server.restart_container("default", HELM_POD, "standalone")
        seen = {(r.pod_name, r.restart_count) for r in (recorder.next_restart() for _ in range(3))}
        assert seen == {(HELM_POD, 3), ("web-6b7f9c5d8-kx7tz", 1), (HELM_POD, 4)} and not failures
    finally:
        watcher.stop()


def test_a_crash_is_reported_once_with_exit_code_and_signal(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.restart_container("default", HELM_POD, "standalone", exit_code=139,
                                    finished_at="2024-05-02T09:00:00Z")
    restart = recorder.next_restart()
    assert (restart.pod_name, restart.container, restart.restart_count) == (HELM_POD, "standalone", 4)
    assert (restart.exit_code, restart.signal, restart.reason) == (139, 11, "Error")
    assert restart.finished_at is not None and restart.finished_at.isoformat() == "2024-05-02T09:00:00+00:00"
    assert restart.node_name == NODE
    assert recorder.flush(seeded_server, "default", HELM_POD) == []


def test_restarts_on_other_nodes_are_not_reported(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.restart_container("kube-system", "coredns-76f75df574-9zq4w", "coredns")
    assert recorder.flush(seeded_server, "default", HELM_POD) == []


def test_a_pod_scheduled_later_counts_every_restart(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.restart_container("kube-system", "coredns-76f75df574-9zq4w", "coredns")
    seeded_server.update("pods", "kube-system", "coredns-76f75df574-9zq4w", {"spec": {"nodeName": NODE}})
    kind, _ = recorder.wait_change(lambda _, p: p["metadata"]["name"].startswith("coredns"))
    assert kind == "ADDED"
    assert [r.restart_count for r in recorder.flush(seeded_server, "default", HELM_POD)] == [1]


def test_a_deleted_pod_is_dropped(seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.delete("pods", "default", "web-6b7f9c5d8-kx7tz")
    kind, _ = recorder.wait_change(lambda _, p: p["metadata"]["name"] == "web-6b7f9c5d8-kx7tz")
    assert kind == "DELETED"
    assert "web-6b7f9c5d8-kx7tz" not in {p["metadata"]["name"] for p in watcher.pods()}


def test_compaction_forces_a_relist_and_every_restart_is_seen_once(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.restart_container("default", HELM_POD, "standalone")
    assert recorder.next_restart().restart_count == 4

    seeded_server.compact()
    assert recorder.next_sync() == 4
    seeded_server.restart_container("default", HELM_POD, "standalone")
    assert recorder.next_restart().restart_count == 5

    seeded_server.compact()
    seeded_server.restart_container("default", HELM_POD, "standalone")
    assert recorder.next_restart().restart_count == 6
    assert recorder.flush(seeded_server, "default", HELM_POD) == []
    assert watcher.lists >= 3


def test_an_api_server_restart_is_survived_and_missed_restarts_caught_up(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    _wait_for_open_watch(seeded_server)
    seeded_server.stop()
    seeded_server.restart_container("default", HELM_POD, "standalone", exit_code=134)
    seeded_server.start()
    restart = recorder.next_restart()
    assert (restart.restart_count, restart.signal) == (4, 6)
    assert recorder.next_sync() == 4

    seeded_server.restart_container("default", HELM_POD, "standalone")
    assert recorder.next_restart().restart_count == 5
    assert recorder.flush(seeded_server, "default", HELM_POD) == []
    assert watcher.last_error is None


def _wait_for_open_watch(server: FakeKubeServer) -> None:
    """Until the watcher's watch request has reached the server, so that stopping the server cuts it."""
    deadline = time.monotonic() + WAIT
    while not any(r.path == "/api/v1/pods" and r.query.get("watch") for r in server.requests):
        assert time.monotonic() < deadline, "the watcher never opened its watch"
        time.sleep(0.01)


def test_api_errors_back_off_and_recover(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    seeded_server.fail_next(3, status=503, path_prefix="/api/v1/pods")
    seeded_server.compact()
    assert recorder.next_sync() == 4
    failed = [r for r in seeded_server.requests if r.path == "/api/v1/pods" and "watch" not in r.query]
    assert len(failed) >= 4


def test_a_failing_callback_does_not_stop_the_watcher(
        seeded_server: FakeKubeServer, kube_client: KubeClient, recorder: Recorder) -> None:
    def explode(*_: object) -> None:
        raise RuntimeError("consumer bug")

    watcher = PodWatcher(kube_client, NODE, recorder.on_restart, on_change=explode, backoff_base=0.05)
    watcher.start()
    try:
        assert watcher.ready.wait(WAIT)
        caught_up = {(r.pod_name, r.restart_count) for r in (recorder.next_restart() for _ in range(2))}
        assert caught_up == {(HELM_POD, 3), ("web-6b7f9c5d8-kx7tz", 1)}  # the first list's catch-up
        seeded_server.restart_container("default", HELM_POD, "standalone")
        assert recorder.next_restart().restart_count == 4
    finally:
        watcher.stop()


def test_stop_ends_the_thread_while_a_watch_is_open(watcher: PodWatcher) -> None:
    thread = watcher._thread
    assert thread is not None and thread.is_alive()
    watcher.stop()
    assert not thread.is_alive()


def test_readiness_says_when_the_pod_watch_fails_and_recovers(
        seeded_server: FakeKubeServer, watcher: PodWatcher, recorder: Recorder) -> None:
    from coredump_agent.commands.sensor import _watch_problem

    assert _watch_problem(watcher) is None
    seeded_server.fail_next(1000, status=503, path_prefix="/api/v1/pods")
    seeded_server.compact()  # the watch ends with 410; every list after it fails
    deadline = time.monotonic() + WAIT
    while (problem := _watch_problem(watcher)) is None:
        assert time.monotonic() < deadline, "readiness never noticed the failing pod watch"
        time.sleep(0.02)
    assert problem.startswith("the pod watch is failing: ")
    seeded_server.clear_failures()
    assert recorder.next_sync() == 4
    assert _watch_problem(watcher) is None
