"""The coredump database: models, engines, sessions and migrations (SQLite or PostgreSQL)."""

from coredumps.db.engine import (
    alembic_config,
    downgrade,
    init_db,
    make_engine,
    parse_url,
    session_factory,
    upgrade,
)
from coredumps.db.models import (
    AIAnalysisResult,
    AnalysisResult,
    Base,
    CleanupEvent,
    CoredumpFile,
    CrashGroup,
    ExportWatermark,
    MilvusInstance,
    Pod,
    RestartEvent,
    StorageEvent,
)
from coredumps.db.types import UTCDateTime, utcnow

__all__ = [
    "AIAnalysisResult",
    "AnalysisResult",
    "Base",
    "CleanupEvent",
    "CoredumpFile",
    "CrashGroup",
    "ExportWatermark",
    "MilvusInstance",
    "Pod",
    "RestartEvent",
    "StorageEvent",
    "UTCDateTime",
    "alembic_config",
    "downgrade",
    "init_db",
    "make_engine",
    "parse_url",
    "session_factory",
    "upgrade",
    "utcnow",
]
