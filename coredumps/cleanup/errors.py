"""Errors of the cleanup package, under the project's tree (``coredumps.errors``)::

    PermanentError
    ├── HelmMissingError       the helm CLI is not on PATH
    ├── HelmFailedError        helm uninstall exited non-zero or ran past cleaner.uninstallTimeout
    ├── NothingToRestoreError  no workload of the instance carries the original-replicas annotation
    └── WebhookRejectedError   the alerting webhook refused the message (4xx)
    TransientError
    └── WebhookUnavailableError the webhook could not be reached, timed out or answered 429/5xx

Kubernetes errors come from ``coredumps.kube`` (``KubeUnavailableError`` is transient).
"""

from __future__ import annotations

from coredumps.errors import PermanentError, TransientError


class HelmMissingError(PermanentError):
    """The helm executable cannot be found."""


class HelmFailedError(PermanentError):
    """helm uninstall failed or timed out."""


class NothingToRestoreError(PermanentError):
    """The instance has no workload that scale-to-zero annotated."""


class WebhookRejectedError(PermanentError):
    """The webhook answered with a 4xx status other than 429."""


class WebhookUnavailableError(TransientError):
    """The webhook could not be reached or failed on its side."""
