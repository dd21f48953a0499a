"""Export fixtures: a SQLite database per test, generated rows, a local dataset folder, moto's S3 API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from coredumps.db import init_db, session_factory
from coredumps.export import LocalDestination
from tests.export.generate import Generated, fill
from tests.storage.conftest import aws_env, bucket, moto_server, s3client

__all__ = ["aws_env", "bucket", "moto_server", "s3client"]


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = init_db(f"sqlite:///{tmp_path / 'db' / 'coredump_agent.db'}")
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def generated(sessions: sessionmaker[Session]) -> Generated:
    return fill(sessions, coredumps=2000, days=20)


@pytest.fixture
def dest(tmp_path: Path) -> LocalDestination:
    return LocalDestination(tmp_path / "parquet")
