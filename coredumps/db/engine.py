"""Engines, sessions and schema migrations for SQLite and PostgreSQL.

The only module that turns a ``database.url`` into a connection. SQLite gets
WAL, a busy timeout and enforced foreign keys on every connection; PostgreSQL
goes through psycopg 3. Migrations run in one transaction under a lock
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
PostgreSQL), so processes that start together migrate once and the rest find
the schema at head. Sessions keep the driver's default transaction handling.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from coredumps.config import Config
from coredumps.errors import ConfigError, TransientError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_EXAMPLES = "use sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname"
_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_MIGRATION_LOCK = {
    "sqlite": "BEGIN IMMEDIATE",
    "postgresql": "SELECT pg_advisory_xact_lock(1668248165)",
}


def parse_url(url: str) -> URL:
    """Parse and normalise a database URL; ``postgres(ql)://`` becomes ``postgresql+psycopg://``."""
    if not url or not url.strip():
        raise ConfigError(f"database.url: the URL is empty; {_EXAMPLES}.")
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"database.url: the URL cannot be parsed; {_EXAMPLES}.") from exc
    driver = parsed.drivername.lower()
    if driver in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if driver in _SQLITE_DRIVERS:
        if parsed.host or parsed.username or parsed.password or parsed.port:
            raise ConfigError(f"database.url: a SQLite URL takes a file path, not a host; {_EXAMPLES}.")
        return parsed.set(drivername="sqlite")
    if driver.startswith("postgresql+"):
        raise ConfigError(f"database.url: driver {driver!r} is not supported, psycopg 3 is; use postgresql://...")
    raise ConfigError(f"database.url: database {driver!r} is not supported; {_EXAMPLES}.")


_SECRET_QUERY_KEYS = ("pass", "secret", "token", "key")


def shown_url(url: URL) -> str:
    """The URL for a message: its password hidden, and so is any query parameter that holds a secret."""
    hidden = {name: "***" for name in url.query if any(word in name.lower() for word in _SECRET_QUERY_KEYS)}
    return url.update_query_dict(hidden).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for ``url``; raises ``ConfigError`` for a URL it cannot use."""
    if busy_timeout < 0:
        raise ConfigError(f"database.busyTimeout: must not be negative, got {busy_timeout}.")
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True)
        _create_parent_folder(parsed)
        engine = create_engine(parsed, pool_pre_ping=True, connect_args={"timeout": busy_timeout})
    except (ArgumentError, NoSuchModuleError, ImportError, TypeError) as exc:
        shown = shown_url(parsed)
        raise ConfigError(f"database.url: {shown} cannot be used: {exc}.") from exc
    _install_sqlite_hooks(engine, busy_timeout)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> AlembicConfig:
    """An Alembic config built in code: migrations from the package, no alembic.ini."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(target: str | Engine, revision: str = "head") -> None:
    """Migrate the schema to ``revision``; a no-op when it is already there."""
    _migrate(target, lambda cfg: command.upgrade(cfg, revision))


def downgrade(target: str | Engine, revision: str = "base") -> None:
    """Migrate the schema back to ``revision`` (``base`` drops every table)."""
    _migrate(target, lambda cfg: command.downgrade(cfg, revision))


def init_db(target: Config | str) -> Engine:
    """Make the engine for a config or URL and migrate its schema to head."""
    if isinstance(target, Config):
        engine = make_engine(target.database_url(), target.database.busy_timeout)
    else:
        engine = make_engine(target)
    upgrade(engine)
    return engine


def _migrate(target: str | Engine, run: Callable[[AlembicConfig], None]) -> None:
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with _connect(engine) as conn:
            if engine.dialect.name == "sqlite":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            with conn.begin():
                conn.exec_driver_sql(_MIGRATION_LOCK[engine.dialect.name])
                run(alembic_config(conn))
    finally:
        if isinstance(target, str):
            engine.dispose()


def _connect(engine: Engine) -> Connection:
    """Open a connection; unreachable is transient, a refused option is a config error."""
    try:
        return engine.connect()
    except DBAPIError as exc:
        shown = shown_url(engine.url)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
        if isinstance(exc, OperationalError):
            raise TransientError(f"database: cannot connect to {shown}: {reason}; check database.url.") from exc
        raise ConfigError(f"database.url: {shown} was refused: {reason}.") from exc


def _create_parent_folder(url: URL) -> None:
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:"):
        return
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"database.url: cannot create the folder {folder} for SQLite: {exc.strerror}.") from exc


def _install_sqlite_hooks(engine: Engine, busy_timeout: float) -> None:
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            _enable_wal(cursor, time.monotonic() + busy_timeout)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def _enable_wal(cursor: Any, deadline: float) -> None:
    """Switch to WAL, retrying until ``deadline``: SQLite skips the busy handler for this switch."""
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
