"""The dashboard's FastAPI application: overview, instances, coredumps, one coredump, crash groups.

Pages are rendered on the server with Jinja2 (autoescape on: everything from the database is
escaped). ``launcher(coredump_id, minutes)`` starts a viewer (the ``viewer`` deployment in
production); ``viewer_lister(coredump_id)`` lists its running viewers. Both are injected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from coredump_agent.dashboard.access import (
    COOKIE,
    SESSION_SECONDS,
    TOKEN_ENV,
    bearer,
    host_is_loopback,
    session_value,
    token_matches,
)
from coredump_agent.dashboard.charts import bar_chart
from coredumps import dashboard_queries as q
from coredumps import viewer as v
from coredumps.config import Config
from coredumps.db import CoredumpFile
from coredumps.errors import CoredumpError

Launcher = Callable[[int, int], Any]
"""``launcher(coredump_id, minutes)``: start a viewer; its return value is shown to the user."""
ViewerLister = Callable[[int], list[v.Viewer]]
"""``viewer_lister(coredump_id)``: the viewers the cluster runs for that coredump."""

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
PER_PAGE = 25
GROUPS_PER_PAGE = 50
MAX_ID = 2**31 - 1
"""The largest id or page number a query may name (beyond it, a database integer overflows)."""
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send "Origin: null" with a form
}
"""On every response: no framing (click-jacking a launch), no scripts or styles from elsewhere, no sniffing."""


class BadQuery(ValueError):
    """A query parameter that cannot be used; the message names it."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if d else "—"
    env.filters["score"] = lambda s: "—" if s is None else f"{s:.1f}"
    env.filters["size"] = _human_size
    return env


def _human_size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, got {text!r}") from None
    if not 0 < value <= MAX_ID:
        raise BadQuery(f"{name} must be a whole number from 1 to {MAX_ID}, got {text!r}")
    return value


def _launched(params: Mapping[str, str]) -> int | None:
    """The minutes of a viewer just requested, as the redirect after a launch says; anything else is ignored."""
    text = params.get("launched", "")
    return int(text) if text.isdigit() and len(text) <= 4 else None


def _float(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadQuery(f"{name} must be a number, got {text!r}") from None


def _date(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name} must be a date like 2026-01-31, got {text!r}") from None
    if not FIRST_DAY <= value <= LAST_DAY:
        raise BadQuery(f"{name} must be a date from {FIRST_DAY} to {LAST_DAY}, got {text!r}")
    return value


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form body, first value of each field."""
    body = (await request.body())[:8192].decode("utf-8", errors="replace")
    return {k: vals[0] for k, vals in parse_qs(body).items() if vals}


def create_app(cfg: Config, sessions: sessionmaker[Session], *, token: str | None, prefect_ui: str | None,
               launcher: Launcher | None, viewer_lister: ViewerLister | None = None) -> FastAPI:
    """The dashboard for ``cfg``'s database, under ``dashboard.path``."""
    base = "/" + cfg.dashboard.path.strip("/") if cfg.dashboard.path.strip("/") else ""
    env = _environment()
    threshold = cfg.analyzer.value_threshold
    vc = cfg.dashboard.viewer
    app = FastAPI(title="Milvus coredump agent", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount(f"{base}/static", StaticFiles(directory=HERE / "static"), name="static")

    session = session_value(token) if token else None

    def authorised(request: Request) -> bool:
        return token_matches(token, bearer(request.headers.get("authorization"))) or token_matches(
            session, request.cookies.get(COOKIE))

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("page", "")
        html = env.get_template(template).render(
            base=base, request=request, token_configured=bool(token), signed_in=authorised(request),
            prefect_ui=prefect_ui, **context)
        return HTMLResponse(html, status_code=status)

    def problem(request: Request, status: int, message: str) -> HTMLResponse:
        return render(request, "error.html", status=status, status_code=status, message=message)

    class Guard(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            path = request.url.path
            public = path in (f"{base}/login", "/healthz") or path.startswith(f"{base}/static/")
            if not token and not host_is_loopback(request.headers.get("host")):
                response: Response = PlainTextResponse(
                    "without a dashboard token this dashboard answers only to 127.0.0.1, ::1 or localhost",
                    status_code=421)
            elif token and not public and not authorised(request):
                if "text/html" in request.headers.get("accept", "") or request.method == "GET":
                    response = render(request, "login.html", status=401, next=path, failed=False)
                else:
                    response = PlainTextResponse("a dashboard token is required", status_code=401)
            else:
                response = await call_next(request)
            response.headers.update(SECURITY_HEADERS)
            if not path.startswith(f"{base}/static/"):
                response.headers["Cache-Control"] = "no-store"
            return response

    app.add_middleware(Guard)

    @app.exception_handler(BadQuery)
    async def bad_query(request: Request, exc: BadQuery) -> HTMLResponse:
        return problem(request, 400, str(exc))

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    if base:
        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse(f"{base}/", status_code=307)

        @app.get(base, include_in_schema=False)
        def bare() -> RedirectResponse:
            return RedirectResponse(f"{base}/", status_code=307)

    def sign_in(request: Request, given: str | None, wanted: str) -> Response:
        target = wanted if wanted.startswith(f"{base}/") and not wanted.startswith("//") else f"{base}/"
        if given is None:
            return render(request, "login.html", next=target, failed=False)
        if not token or session is None:
            return problem(request, 400, f"no dashboard token is configured; set {TOKEN_ENV} to use one")
        if not token_matches(token, given):
            return render(request, "login.html", status=401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, session, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            path=base or "/", secure=request.url.scheme == "https")
        return response

    @app.get(f"{base}/login", response_class=HTMLResponse)
    def login(request: Request) -> Response:
        # The token is taken only from the form's POST: in a URL it would land in history and proxy logs.
        return sign_in(request, None, request.query_params.get("next", ""))

    @app.post(f"{base}/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        form = await _form(request)
        return sign_in(request, form.get("token", ""), form.get("next", ""))

    @app.get(f"{base}/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        with sessions() as s:
            counts = q.overview(s, threshold)
            trend = q.trend_per_day(s, threshold, days=30)
            scores = q.score_distribution(s)
            activity = q.recent_activity(s, 20)
        trend_chart = bar_chart([(d.day.isoformat(), d.count) for d in trend])
        score_chart = bar_chart([(f"{b.low}–{b.high}", b.count) for b in scores], width=400)
        return render(request, "overview.html", page="overview", counts=counts, threshold=threshold,
                      trend=trend, trend_chart=trend_chart, scores=scores, score_chart=score_chart,
                      activity=activity)

    @app.get(f"{base}/instances", response_class=HTMLResponse)
    def instances(request: Request) -> HTMLResponse:
        with sessions() as s:
            rows = q.instances(s)
        return render(request, "instances.html", page="instances", rows=rows)

    @app.get(f"{base}/coredumps", response_class=HTMLResponse)
    def coredumps(request: Request) -> HTMLResponse:
        params = request.query_params
        filters = q.CoredumpFilter(
            instance=params.get("instance") or None, signal=params.get("signal") or None,
            min_score=_float(params, "min_score"), max_score=_float(params, "max_score"),
            crash_group_id=_int(params, "group"), since=_date(params, "since"), until=_date(params, "until"),
            status=params.get("status") or None,
        )
        sort = params.get("sort", "created")
        if sort not in q.SORT_KEYS:
            raise BadQuery(f"sort must be one of {', '.join(q.SORT_KEYS)}, got {sort!r}")
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadQuery(f"order must be asc or desc, got {order!r}")
        page_no = _int(params, "page", 1) or 1
        per_page = _int(params, "per_page", PER_PAGE) or PER_PAGE
        with sessions() as s:
            result = q.list_coredumps(s, filters, sort=sort, descending=order == "desc", page=page_no,
                                      per_page=per_page)
            choices = q.filter_choices(s)
        kept = {k: val for k, val in params.items() if val and k != "page"}

        def page_url(n: int) -> str:
            return f"{base}/coredumps?" + urlencode({**kept, "page": n})

        def sort_url(key: str) -> str:
            flip = "asc" if sort == key and order == "desc" else "desc"
            rest = {k: val for k, val in kept.items() if k not in ("sort", "order")}
            return f"{base}/coredumps?" + urlencode({**rest, "sort": key, "order": flip})

        return render(request, "coredumps.html", page="coredumps", result=result, filters=params,
                      choices=choices, page_url=page_url, sort_url=sort_url, sort=sort, order=order)

    @app.get(f"{base}/coredumps/{{coredump_id}}", response_class=HTMLResponse)
    def coredump(request: Request, coredump_id: int) -> HTMLResponse:
        detail = None
        if 0 < coredump_id <= MAX_ID:
            with sessions() as s:
                detail = q.coredump_detail(s, coredump_id)
        if detail is None:
            return problem(request, 404, f"there is no coredump with id {coredump_id}")
        viewers: list[v.Viewer] = []
        viewer_error = None
        if viewer_lister is not None:
            try:
                now = datetime.now(UTC)
                viewers = [x for x in viewer_lister(coredump_id) if not x.expired(now)]
            except CoredumpError as exc:
                viewer_error = str(exc)
        run_url = f"{prefect_ui.rstrip('/')}/runs/flow-run/{detail.flow_run_id}" \
            if prefect_ui and detail.flow_run_id else None
        breakdown = sorted(((k, val) for k, val in detail.score_breakdown.items() if isinstance(val, int | float)),
                           key=lambda kv: -float(kv[1]))
        return render(request, "coredump.html", page="coredumps", d=detail, run_url=run_url, viewers=viewers,
                      viewer_error=viewer_error, breakdown=breakdown, launched=_launched(request.query_params),
                      can_launch=launcher is not None and vc.enabled, vc=vc)

    @app.post(f"{base}/coredumps/{{coredump_id}}/viewer", response_class=HTMLResponse)
    async def launch(request: Request, coredump_id: int) -> Response:
        if not token:
            return problem(request, 403, f"launching a viewer needs a dashboard token; set {TOKEN_ENV} "
                                         "and restart the dashboard")
        if not authorised(request):
            return problem(request, 401, "launching a viewer needs the dashboard token; sign in first")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return problem(request, 403, "the request came from another site; launch the viewer from this page")
        if launcher is None or not vc.enabled:
            return problem(request, 503, "launching viewers is not enabled on this dashboard")
        raw = (await _form(request)).get("minutes") or str(vc.default_duration)
        try:
            minutes = v.duration_minutes(int(raw), vc)
        except (ValueError, CoredumpError):
            return problem(request, 400, f"minutes must be a whole number from 1 to {vc.max_duration}, got {raw!r}")
        with sessions() as s:
            row = s.get(CoredumpFile, coredump_id) if 0 < coredump_id <= MAX_ID else None
            stored = row is not None and row.stored
        if row is None:
            return problem(request, 404, f"there is no coredump with id {coredump_id}")
        if not stored:
            return problem(request, 409, f"coredump {coredump_id} is not stored; there is nothing to open")
        try:
            await run_in_threadpool(launcher, coredump_id, minutes)
        except CoredumpError as exc:
            return problem(request, 409, str(exc))
        except Exception as exc:  # Prefect unreachable, or refusing: say so instead of a bare 500
            log.warning("could not start a viewer for coredump %s: %s", coredump_id, exc)
            return problem(request, 502, f"could not ask Prefect to start the viewer ({type(exc).__name__}); "
                                         "is the Prefect API reachable?")
        return RedirectResponse(f"{base}/coredumps/{coredump_id}?launched={minutes}", status_code=303)

    @app.get(f"{base}/groups", response_class=HTMLResponse)
    def groups(request: Request) -> HTMLResponse:
        page_no = _int(request.query_params, "page", 1) or 1
        with sessions() as s:
            rows, total = q.crash_groups(s, days=14, page=page_no, per_page=GROUPS_PER_PAGE)
        pages = max(1, -(-total // GROUPS_PER_PAGE))
        charts = {g.id: bar_chart([(d.day.isoformat(), d.count) for d in g.trend], width=140, height=24, gap=1)
                  for g in rows}
        return render(request, "groups.html", page="groups", rows=rows, charts=charts, page_no=page_no, pages=pages,
                      total=total)

    return app
