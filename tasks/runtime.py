"""Per-process resources for tasks: one engine per database URL, migrated once."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from coredumps.config import Config
from coredumps.db.engine import init_db, session_factory

_lock = threading.Lock()
_sessions: dict[str, sessionmaker[Session]] = {}


def sessions_for(cfg: Config) -> sessionmaker[Session]:
    """A session factory for the configured database, running its migrations on first use."""
    url = cfg.database_url()
    with _lock:
        if url not in _sessions:
            _sessions[url] = session_factory(init_db(cfg))
        return _sessions[url]
