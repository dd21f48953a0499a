"""The export's own errors, under the project's tree (``coredumps.errors``).

    PermanentError
    └── DatasetMismatchError   a published part was written with another schema
    TransientError
    └── ExportBusyError        another export holds the database's export lock

S3 and file-system failures come out as ``StorageRejectedError`` and
``StorageUnavailableError``; database outages as ``TransientError``.
"""

from __future__ import annotations

from coredumps.errors import PermanentError, TransientError


class DatasetMismatchError(PermanentError):
    """The dataset holds a part whose schema differs from this version's; a full export rewrites it."""


class ExportBusyError(TransientError):
    """Another export of the same database is running."""
