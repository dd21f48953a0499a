"""Alembic migrations of the coredump database; run them with ``coredumps.db.upgrade``."""
