"""Database fixtures: a SQLite file per test and, where reachable, a fresh PostgreSQL schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from coredumps.db import make_engine

DEFAULT_POSTGRES_URL = "postgresql+psycopg://coredump:coredump@127.0.0.1:5432/coredump_test"
CONNECT_TIMEOUT_SECONDS = "3"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL, or a skip that says how to start one."""
    raw = os.environ.get("COREDUMP_AGENT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    url = make_url(raw).set(drivername="postgresql+psycopg")
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    shown = url.render_as_string(hide_password=True)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        pytest.skip(f"PostgreSQL not reachable at {shown}: {reason}; run scripts/start-postgres.sh")
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)


def _drop_everything(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    finally:
        engine.dispose()


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """``postgres_url`` with every table, ``alembic_version`` included, dropped."""
    _drop_everything(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file under tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'coredump_agent.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``; disposed after the test."""
    created = make_engine(db_url)
    yield created
    created.dispose()
