"""The project's exception tree.

    CoredumpError                  every error this package raises on purpose
    ├── ConfigError                a bad configuration value (key path and reason)
    ├── PermanentError             retrying cannot help
    │   ├── BadInputError          not a usable core: empty, not ELF, corrupt archive,
    │   │                          cut short before its notes end, a directory, a FIFO, ...
    │   ├── StorageRejectedError   bad credentials, missing bucket, a rejected name
    │   └── AIRejectedError        the LLM endpoint refused the request (400/401/403)
    └── TransientError             worth retrying with backoff
        ├── AnalysisTimeoutError   GDB ran past analyzer.gdbTimeout and was killed
        ├── StorageUnavailableError connection errors, timeouts, 5xx, throttling
        └── AIUnavailableError     LLM timeouts, 429 and 5xx

Library exceptions (pygdbmi, s3fs, botocore, httpx, sqlalchemy) are wrapped with
``raise ... from exc`` in the one module that talks to that library, so callers
only ever see this tree. ``retryable(exc)`` is what retry policies key on.
"""

from __future__ import annotations


class CoredumpError(Exception):
    """Base class: the message is one sentence a person can act on."""


class ConfigError(CoredumpError):
    """A configuration value is missing, malformed or out of range."""


class PermanentError(CoredumpError):
    """An error that the same call will hit again: do not retry."""


class TransientError(CoredumpError):
    """An error that may pass: retry with backoff."""


class BadInputError(PermanentError):
    """The input is not a core GDB can analyse."""


class AnalysisTimeoutError(TransientError):
    """GDB did not finish within analyzer.gdbTimeout and was killed."""


class StorageRejectedError(PermanentError):
    """The storage backend refused the request for a reason a retry cannot fix."""


class StorageUnavailableError(TransientError):
    """The storage backend could not be reached or was overloaded."""


class AIRejectedError(PermanentError):
    """The LLM endpoint refused the request (bad key, bad request, forbidden)."""


class AIUnavailableError(TransientError):
    """The LLM endpoint timed out, throttled or failed on its side."""


def retryable(exc: BaseException) -> bool:
    """True when retrying the failed call could succeed."""
    return isinstance(exc, TransientError)
