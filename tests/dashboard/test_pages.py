"""Every dashboard page over a database filled by real flow runs, through real HTTP on loopback."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from coredumps.db import CoredumpFile, CrashGroup
from tests.dashboard.conftest import BULK, HOSTILE, TOKEN, Filled, Served, stored_id

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ESCAPED = "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;"


def rows(html: str, css: str = "coredump") -> list[str]:
    return re.findall(rf'<tr class="{css}[^"]*"[^>]*>(.*?)</tr>', html, re.S)


def scores(html: str) -> list[float]:
    return [float(s) for s in re.findall(r'<td class="score">([0-9.]+)</td>', html)]


def test_overview_counts_charts_and_activity(dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    page = d.page("/", headers=AUTH)
    assert page.status_code == 200
    html = page.text
    total = len(filled.runs) + BULK
    assert f'<span class="n" id="count-coredumps">{total}</span>' in html
    high = sum(1 for r in filled.runs.values() if r["score"] >= filled.cfg.analyzer.value_threshold) \
        + sum(1 for n in range(BULK) if n % 10 >= filled.cfg.analyzer.value_threshold)
    assert f'id="count-high-value">{high}</span>' in html
    assert 'id="count-groups">3</span>' in html
    assert html.count("<svg") == 2 and "<script" not in html
    assert HOSTILE not in html and "core.&lt;script&gt;" in html


def test_instances_show_pods_restarts_coredumps_and_pending_cleanups(dashboard: Callable[..., Served]) -> None:
    html = dashboard().page("/instances", headers=AUTH).text
    mine = next(r for r in rows(html, "instance") if "<td>my-release</td>" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", mine, re.S)
    assert cells[2] == "helm" and "my-release-milvus-standalone-0" in cells[4]
    assert cells[5] == "7" and ">3</a>" in cells[6] and cells[7] == "1"
    assert any("<td>other-release</td>" in r for r in rows(html, "instance"))
    assert HOSTILE not in html and ESCAPED in html


def test_coredumps_paginate(dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    first = d.page("/coredumps", headers=AUTH).text
    total = len(filled.runs) + BULK
    assert f"{total} coredumps; page 1 of 2" in first and len(rows(first)) == 25
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = d.page("/coredumps", params={"page": 2}, headers=AUTH).text
    assert len(rows(second)) == total - 25 and 'rel="prev"' in second
    ids = set(re.findall(r'<tr class="coredump" data-id="(\d+)"', first + second))
    assert len(ids) == total


def test_coredumps_filter_by_instance_signal_score_group_and_date(
        dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    assert "30 coredumps" in d.page("/coredumps", params={"instance": "bulk"}, headers=AUTH).text
    assert "15 coredumps" in d.page("/coredumps", params={"signal": "SIGBUS"}, headers=AUTH).text
    high = d.page("/coredumps", params={"min_score": 8, "per_page": 100}, headers=AUTH).text
    assert scores(high) and min(scores(high)) >= 8
    ranged = d.page("/coredumps", params={"min_score": 2, "max_score": 3, "instance": "bulk"}, headers=AUTH).text
    assert sorted(set(scores(ranged))) == [2.0, 3.0]
    with filled.sessions() as s:
        row = s.get(CoredumpFile, stored_id(filled))
        assert row is not None and row.crash_group_id is not None
        group = row.crash_group_id
    grouped = d.page("/coredumps", params={"group": group}, headers=AUTH).text
    assert "2 coredumps" in grouped
    until = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    old = d.page("/coredumps", params={"until": until, "per_page": 100}, headers=AUTH).text
    assert "12 coredumps" in old and all("core.bulk" in r or "core.&lt;" in r for r in rows(old))


def test_coredumps_sort_and_keep_filters_in_links(dashboard: Callable[..., Served]) -> None:
    d = dashboard()
    html = d.page("/coredumps", params={"sort": "score", "order": "asc", "instance": "bulk"}, headers=AUTH).text
    found = scores(html)
    assert found == sorted(found) and found[0] == 0.0
    assert re.search(r'rel="next" href="[^"]*instance=bulk[^"]*"', html)


def test_bad_filter_is_a_clear_400(dashboard: Callable[..., Served]) -> None:
    page = dashboard().page("/coredumps", params={"min_score": "high"}, headers=AUTH)
    assert page.status_code == 400 and "min_score must be a number, got &#39;high&#39;" in page.text


def test_coredump_detail_shows_diagnosis_frames_score_storage_group_and_flow_run(
        dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    cid = stored_id(filled)
    run = filled.runs["segv-a"]
    html = d.page(f"/coredumps/{cid}", headers=AUTH).text
    assert '<dd id="signal">SIGSEGV' in html
    assert re.search(r'<dd id="crash-reason">[^<—]+</dd>', html)
    assert "segment_rows" in html
    assert '<table id="breakdown"' in html and "pod_association" in html
    assert f'<dd class="mono" id="location">{run["location"]}</dd>' in html
    other = stored_id(filled, "segv-b")
    assert f'href="/dashboard/coredumps/{other}"' in html
    assert f'href="http://prefect.example:4200/runs/flow-run/{run["flow_run_id"]}"' in html
    assert 'id="launch-viewer"' not in html, "no launcher was given"


def test_missing_coredump_is_404(dashboard: Callable[..., Served]) -> None:
    page = dashboard().page("/coredumps/999999", headers=AUTH)
    assert page.status_code == 404 and "no coredump with id 999999" in page.text


def test_crash_groups_have_counts_first_last_seen_and_trend(dashboard: Callable[..., Served]) -> None:
    html = dashboard().page("/groups", headers=AUTH).text
    groups = rows(html, "group")
    assert len(groups) == 3
    counts = sorted(int(n) for g in groups for n in re.findall(r'<td class="count">(\d+)</td>', g))
    assert counts == [1, 1, 2]
    assert all('class="spark"' in g for g in groups)


def test_every_page_needs_the_token_when_one_is_set(dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    for path in ("/", "/instances", "/coredumps", f"/coredumps/{stored_id(filled)}", "/groups"):
        refused = d.page(path)
        assert refused.status_code == 401 and 'id="token"' in refused.text
        assert d.page(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert d.page(path, headers=AUTH).status_code == 200
    assert d.client.post("/dashboard/login", data={"token": "wrong"}).status_code == 401
    in_url = d.page("/login", params={"token": TOKEN, "next": "/dashboard/groups"})  # never taken from a URL
    assert in_url.status_code == 200 and 'id="token"' in in_url.text and "set-cookie" not in in_url.headers
    signed = d.client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/groups"})
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard/groups"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "max-age=43200" in cookie and "samesite=strict" in cookie
    assert TOKEN.lower() not in cookie, "the cookie proves the token without holding it"
    assert d.page("/groups").status_code == 200, "the cookie signs the browser in"
    d.client.cookies.clear()
    d.client.cookies.set("coredump_agent_session", TOKEN)  # the token itself is not a session
    assert d.page("/groups").status_code == 401


def test_without_a_token_pages_are_open_but_launching_is_refused(
        dashboard: Callable[..., Served], filled: Filled) -> None:
    launched: list[tuple[int, int]] = []
    d = dashboard(token=None, launcher=lambda cid, minutes: launched.append((cid, minutes)))
    cid = stored_id(filled)
    assert d.page("/").status_code == 200
    refused = d.client.post(f"/dashboard/coredumps/{cid}/viewer", data={"minutes": "5"})
    assert refused.status_code == 403 and "COREDUMP_AGENT_DASHBOARD_TOKEN" in refused.text
    assert launched == []


def test_launch_needs_the_token_and_caps_the_duration(dashboard: Callable[..., Served], filled: Filled) -> None:
    launched: list[tuple[int, int]] = []
    d = dashboard(launcher=lambda cid, minutes: launched.append((cid, minutes)))
    cid = stored_id(filled)
    url = f"/dashboard/coredumps/{cid}/viewer"
    assert d.client.post(url, data={"minutes": "5"}).status_code == 401
    foreign = d.client.post(url, data={"minutes": "5"}, headers={**AUTH, "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    ok = d.client.post(url, data={"minutes": "500"}, headers=AUTH)
    assert ok.status_code == 303 and ok.headers["location"] == f"/dashboard/coredumps/{cid}?launched=120"
    assert launched == [(cid, 120)]
    assert d.client.post(url, data={"minutes": "soon"}, headers=AUTH).status_code == 400
    assert 'id="launch-viewer"' in d.page(f"/coredumps/{cid}", headers=AUTH).text


def test_every_response_forbids_framing_and_foreign_content(dashboard: Callable[..., Served], filled: Filled) -> None:
    d = dashboard()
    for response in (d.page("/", headers=AUTH), d.page("/coredumps"), d.page("/static/style.css"),
                     d.page("/coredumps", params={"min_score": "x"}, headers=AUTH)):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    assert d.page("/", headers=AUTH).headers["cache-control"] == "no-store"


def test_without_a_token_only_loopback_names_are_answered(dashboard: Callable[..., Served]) -> None:
    d = dashboard(token=None)
    for host in ("127.0.0.1:8082", "localhost", "[::1]:8082"):
        assert d.page("/", headers={"Host": host}).status_code == 200
    rebound = d.page("/coredumps", headers={"Host": "rebind.attacker.example:8082"})
    assert rebound.status_code == 421 and "only to 127.0.0.1" in rebound.text
    with_token = dashboard()  # a token protects every page whatever the name
    assert with_token.page("/", headers={**AUTH, "Host": "dashboard.example.com"}).status_code == 200


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/coredumps", {"page": "1000000000000000000000"}, 400),
    ("/coredumps", {"group": "99999999999999999999"}, 400),
    ("/coredumps", {"per_page": "-1"}, 400),
    ("/coredumps", {"until": "9999-12-31"}, 400),
    ("/coredumps/99999999999999999999", {}, 404),
    ("/coredumps/-7", {}, 404),
])
def test_out_of_range_queries_are_refused_in_one_sentence(
        dashboard: Callable[..., Served], path: str, params: dict[str, str], status: int) -> None:
    page = dashboard().page(path, params=params, headers=AUTH)
    assert page.status_code == status
    assert "must be" in page.text or "no coredump with id" in page.text


def test_a_launch_needs_a_stored_coredump_and_says_when_prefect_cannot_start_it(
        dashboard: Callable[..., Served], filled: Filled) -> None:
    launched: list[tuple[int, int]] = []
    d = dashboard(launcher=lambda cid, minutes: launched.append((cid, minutes)))
    missing = d.client.post("/dashboard/coredumps/999999/viewer", data={"minutes": "5"}, headers=AUTH)
    assert missing.status_code == 404
    with filled.sessions() as session:
        skipped = session.scalars(select(CoredumpFile.id).where(CoredumpFile.stored.is_(False))).first()
    unstored = d.client.post(f"/dashboard/coredumps/{skipped}/viewer", data={"minutes": "5"}, headers=AUTH)
    assert unstored.status_code == 409 and "not stored" in unstored.text
    assert launched == []

    def unreachable(cid: int, minutes: int) -> None:
        raise ConnectionRefusedError("connection refused")

    down = dashboard(launcher=unreachable)
    failed = down.client.post(f"/dashboard/coredumps/{stored_id(filled)}/viewer", data={"minutes": "5"},
                              headers=AUTH)
    assert failed.status_code == 502 and "is the Prefect API reachable?" in failed.text
    odd = d.page(f"/coredumps/{stored_id(filled)}", params={"launched": "9 (approved by admin)"}, headers=AUTH)
    assert odd.status_code == 200 and 'id="launched"' not in odd.text


def test_crash_groups_come_a_page_at_a_time(dashboard: Callable[..., Served], filled: Filled) -> None:
    now = datetime.now(UTC)
    old = [CrashGroup(signature=f"old!SIGSEGV: f{n}", title=f"f{n}", signal_name="SIGSEGV",
                      first_seen=now - timedelta(days=30 + n), last_seen=now - timedelta(days=30 + n), count=1)
           for n in range(60)]
    with filled.sessions() as session:
        session.add_all(old)
        session.commit()
    try:
        d = dashboard()
        first = d.page("/groups", headers=AUTH).text
        assert len(rows(first, "group")) == 50 and "63 crash groups" in first
        assert 'rel="next" href="/dashboard/groups?page=2"' in first and 'rel="prev"' not in first
        second = d.page("/groups", params={"page": "2"}, headers=AUTH).text
        assert len(rows(second, "group")) == 13 and 'rel="prev" href="/dashboard/groups?page=1"' in second
        assert "f59" in second and "f59" not in first, "the oldest come last"
    finally:  # the filled database is the session's: leave it as it was
        with filled.sessions() as session:
            session.execute(delete(CrashGroup).where(CrashGroup.signature.like("old!SIGSEGV: f%")))
            session.commit()
