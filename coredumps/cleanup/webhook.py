"""The alerting webhook (``monitor.alerting.webhookUrl``): one JSON POST per cleanup decision.

The only module that talks to the webhook. The URL may carry a token, so it never appears in
an error message or a log line; only its host does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from coredumps.cleanup.errors import WebhookRejectedError, WebhookUnavailableError
from coredumps.errors import ConfigError

TIMEOUT_SECONDS = 10.0


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the webhook"


def post(url: str, message: Mapping[str, Any], timeout: float = TIMEOUT_SECONDS) -> int:
    """POST ``message`` as JSON; returns the HTTP status."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("monitor.alerting.webhookUrl must be an http:// or https:// URL.")
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(message, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "milvus-coredump-agent"},
    )
    host = _host(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise WebhookUnavailableError(f"the webhook at {host} answered {exc.code}; retry later.") from exc
        raise WebhookRejectedError(
            f"the webhook at {host} refused the message ({exc.code}); check monitor.alerting.webhookUrl."
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookUnavailableError(f"the webhook at {host} could not be reached: {reason}.") from exc
