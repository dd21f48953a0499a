"""The two outside processes cleanup talks to besides Kubernetes: the helm CLI and the webhook."""

from __future__ import annotations

from pathlib import Path

import pytest

from coredumps.cleanup import HelmFailedError, HelmMissingError, WebhookRejectedError, WebhookUnavailableError, helm
from coredumps.cleanup.webhook import post as post_webhook
from coredumps.errors import ConfigError
from tests.cleanup.conftest import Webhook


def test_helm_uninstall_passes_namespace_and_timeout(helm_stub: Path) -> None:
    output = helm.uninstall("my-release", "default", 600.0)
    assert output == 'release "my-release" uninstalled'
    assert helm_stub.read_text().splitlines() == [
        "uninstall", "--namespace", "default", "--timeout", "600s", "--", "my-release"]


def test_a_missing_helm_is_one_clear_sentence(no_helm: None) -> None:
    with pytest.raises(HelmMissingError) as caught:
        helm.uninstall("my-release", "default", 600.0)
    assert str(caught.value) == "helm is not installed; install it or use cleaner.action scale-to-zero"


def test_a_failing_helm_says_what_it_printed(helm_stub: Path) -> None:
    script = Path(helm.helm_path())
    script.write_text('#!/bin/sh\necho "Error: uninstall: Release not loaded: my-release: release: not found" >&2\n'
                      "exit 1\n")
    with pytest.raises(HelmFailedError, match=r"failed \(exit 1\): Error: uninstall: Release not loaded"):
        helm.uninstall("my-release", "default", 600.0)


def test_the_webhook_gets_json_and_its_url_never_shows_in_errors(webhook: Webhook) -> None:
    assert post_webhook(webhook.url, {"decision": "scheduled"}, timeout=5.0) == 200
    assert webhook.bodies[-1] == {"decision": "scheduled"}
    webhook.status = 503
    with pytest.raises(WebhookUnavailableError) as unavailable:
        post_webhook(webhook.url, {}, timeout=5.0)
    webhook.status = 404
    with pytest.raises(WebhookRejectedError) as rejected:
        post_webhook(webhook.url, {}, timeout=5.0)
    for error in (unavailable.value, rejected.value):
        assert "secret" not in str(error) and "127.0.0.1" in str(error)
    with pytest.raises(ConfigError, match="http:// or https://"):
        post_webhook("file:///etc/passwd", {})
