"""The export on PostgreSQL: a server-side cursor, driver-typed values, the advisory lock (own schema per test)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from coredumps.db import init_db, session_factory
from coredumps.export import TABLE_NAMES, ExportBusyError, LocalDestination, engine_of, export_dataset, export_lock
from tests.db.conftest import postgres_url
from tests.export.compare import assert_matches_database
from tests.export.generate import fill

__all__ = ["postgres_url"]
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """A database in a fresh schema of its own, so that other tests on the same server are left alone."""
    schema = f"export_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = init_db(url.render_as_string(hide_password=False))
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_export_from_postgresql_matches_row_for_row_and_holds_the_lock(
    pg_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    fill(pg_sessions, coredumps=800, days=5)
    dest = LocalDestination(tmp_path / "parquet")

    export_dataset(pg_sessions, dest, batch_rows=300)

    for table in TABLE_NAMES:
        assert_matches_database(str(tmp_path / "parquet"), pg_sessions, table)
    with export_lock(engine_of(pg_sessions)), pytest.raises(ExportBusyError):
        export_dataset(pg_sessions, dest)
    assert export_dataset(pg_sessions, dest).rows_written == 0
