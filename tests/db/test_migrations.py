"""Engines and migrations on a real SQLite file and, where reachable, a real PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from coredumps.config import Config
from coredumps.db import Base, alembic_config, downgrade, init_db, make_engine, parse_url, upgrade
from coredumps.errors import ConfigError, TransientError

MODEL_TABLES = set(Base.metadata.tables)


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_creates_every_model_table_and_stamps_head(engine: Engine) -> None:
    upgrade(engine)

    assert set(inspect(engine).get_table_names()) == MODEL_TABLES | {"alembic_version"}
    assert _revision(engine) == _head() == "0001"


def test_upgrade_twice_keeps_the_data_and_changes_nothing(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO export_watermarks (table_name, updated_at) VALUES ('pods', :now)"),
            {"now": "2025-01-01 00:00:00"},
        )

    upgrade(engine)

    with engine.connect() as conn:
        assert conn.execute(text("SELECT table_name FROM export_watermarks")).scalars().all() == ["pods"]
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert _revision(engine) == _head()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrated_foreign_keys_have_the_models_on_delete_rules(engine: Engine) -> None:
    upgrade(engine)
    inspector = inspect(engine)

    for table in Base.metadata.sorted_tables:
        expected = {(fk.parent.name, fk.column.table.name, fk.ondelete) for fk in table.foreign_keys}
        reflected = {
            (fk["constrained_columns"][0], fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys(table.name)
        }
        assert reflected == expected, table.name


def test_downgrade_to_base_drops_every_table(engine: Engine) -> None:
    upgrade(engine)

    downgrade(engine)

    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert _revision(engine) is None


def test_upgrades_started_together_migrate_once(db_url: str) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def migrate() -> None:
        engine = make_engine(db_url)
        try:
            barrier.wait(timeout=30)
            upgrade(engine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    engine = make_engine(db_url)
    try:
        assert _revision(engine) == _head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'agent.db'}", busy_timeout=12.5)
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        engine.dispose()

    assert pragmas == {"journal_mode": "wal", "busy_timeout": 12500, "foreign_keys": 1, "synchronous": 1}
    assert (tmp_path / "a" / "b" / "agent.db").is_file()


def test_init_db_migrates_the_sqlite_file_under_the_configured_data_dir(tmp_path: Path) -> None:
    cfg = Config(agent={"dataDir": str(tmp_path / "data")}, database={"busyTimeout": "5s"})

    engine = init_db(cfg)
    try:
        assert _revision(engine) == _head()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 5000
    finally:
        engine.dispose()
    assert (tmp_path / "data" / "coredump_agent.db").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "not a url",
        "mysql://milvus:hunter2@db/coredumps",
        "postgresql+psycopg2://milvus:hunter2@db/coredumps",
        "postgresql://milvus:hunter2@db:notaport/coredumps",
        "sqlite://milvus:hunter2@db/coredumps.db",
    ],
)
def test_unusable_url_raises_config_error_naming_database_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)

    message = str(caught.value)
    assert message.startswith("database.url: ")
    assert "hunter2" not in message
    assert "\n" not in message


@pytest.mark.parametrize("url", ["postgres://u:p@db/x", "postgresql://u:p@db/x", "postgresql+psycopg://u:p@db/x"])
def test_postgres_urls_use_psycopg_3(url: str) -> None:
    assert parse_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["postgresql://milvus:hunter2@127.0.0.1:1/coredumps?connect_timeout=2",
                                 "postgresql://milvus@127.0.0.1:1/coredumps?connect_timeout=2&password=hunter2",
                                 "postgresql://milvus@127.0.0.1:1/coredumps?connect_timeout=2&sslpassword=hunter2"])
def test_unreachable_database_raises_transient_error_without_the_password(url: str) -> None:
    with pytest.raises(TransientError) as caught:
        upgrade(url)

    assert "database: cannot connect to" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "connect_timeout=2" in str(caught.value), "only what holds a secret is hidden"


def test_connection_option_the_driver_refuses_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^database\.url: .*bogus"):
        upgrade("postgresql://milvus:hunter2@127.0.0.1:1/coredumps?bogus=1")


def test_upgrade_that_fails_part_way_leaves_no_table_behind(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE export_watermarks (table_name VARCHAR(64))")

    with pytest.raises(DBAPIError):
        upgrade(engine)

    assert set(inspect(engine).get_table_names()) == {"export_watermarks"}
