"""Secrets in the core's strings never reach the prompt; ordinary crash text survives."""

from __future__ import annotations

import pytest

from coredumps.ai.redact import REDACTED, Redactor, redactor_for
from coredumps.errors import ConfigError
from tests.ai.conftest import ai_config

SECRETS = [
    ("aws access key", "key id AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    ("openai key", "using sk-proj-abcdefghijklmnop1234567890 now", "sk-proj-abcdefghijklmnop1234567890"),
    ("github token", "clone with ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("jwt", "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl end", "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    ("bearer", "header Bearer abc123def456ghi789", "abc123def456ghi789"),
    ("authorization header", "Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    ("pem block", "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nqwerty\n-----END RSA PRIVATE KEY-----\ny",
     "MIIEpAIBAAKCAQEA"),
    ("pem block cut short", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "MIIEvQIBADANBgkq"),
    ("minio env", "MINIO_SECRET_KEY=hunter2xyz", "hunter2xyz"),
    ("password env", "PASSWORD=correcthorse", "correcthorse"),
    ("any upper-case env", "ETCD_ROOT_CREDS=rootpw123", "rootpw123"),
    ("quoted env value", "DB_PASS='a b c'", "a b c"),
    ("env value inside a frame", "connect (MINIO_SECRET_KEY=hunter2xyz) from libmilvus.so", "hunter2xyz"),
    ("url credentials", "minio at http://admin:supers3cret@minio:9000/bucket", "supers3cret"),
    ("url credentials with @ in password", "postgres://milvus:p@ssw0rd@db:5432/meta", "ssw0rd"),
    ("url without user", "redis://:redispw@redis:6379", "redispw"),
    ("cli flag", "--minio.secretAccessKey=hunter2xyz", "hunter2xyz"),
    ("json password", '{"password": "hunter2xyz", "user": "root"}', "hunter2xyz"),
    ("yaml-ish", "accessKey: AbCdEf1234567890", "AbCdEf1234567890"),
    ("hex next to token", "token 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"),
    ("base64 next to key", "signing key: QWxhZGRpbjpvcGVuIHNlc2FtZTEyMzQ1Ng==", "QWxhZGRpbjpvcGVuIHNlc2FtZTEyMzQ1Ng"),
    ("glm key", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
]


@pytest.mark.parametrize(("text", "secret"), [case[1:] for case in SECRETS], ids=[case[0] for case in SECRETS])
def test_secret_is_replaced(text: str, secret: str) -> None:
    redacted = Redactor()(text)
    assert secret not in redacted
    assert REDACTED in redacted


KEPT = [
    ("frame with pointer", "#0  0x00007f3a2b4c5d6e in milvus::SegmentLoader::Load (this=0x0) at Loader.cpp:120"),
    ("c++ scopes with token in a name", "milvus::auth::TokenVerifier::verify()"),
    ("nested templates", "std::vector<std::vector<std::pair<int, int>>> const&"),
    ("assertion with ==", "Assertion `SIZE==0' failed"),
    ("prose about tokens", "Token validation failed for the request"),
    ("library path", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
    ("registers", "rip = 0x00007f3a2b4c5d6e"),
]


@pytest.mark.parametrize("text", [case[1] for case in KEPT], ids=[case[0] for case in KEPT])
def test_ordinary_crash_text_is_kept(text: str) -> None:
    assert Redactor()(text) == text


def test_names_stay_and_only_values_go() -> None:
    redacted = Redactor()("MINIO_SECRET_KEY=hunter2xyz --minio.secretAccessKey=abc Bearer abcdef123456")
    assert redacted == "MINIO_SECRET_KEY=[REDACTED] --minio.secretAccessKey=[REDACTED] Bearer [REDACTED]"


@pytest.mark.parametrize("text", [case[1] for case in SECRETS], ids=[case[0] for case in SECRETS])
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = Redactor()(text)
    assert Redactor()(once) == once


def test_configured_patterns_are_removed() -> None:
    redactor = redactor_for(ai_config(redact_patterns=[r"tenant-[0-9]+", r"internal\.example\.com"]))
    assert redactor("tenant-42 on internal.example.com") == f"{REDACTED} on {REDACTED}"


def test_known_secrets_are_removed_verbatim() -> None:
    redactor = Redactor(secrets=["plainwordsecret", None, ""])
    assert redactor("the key plainwordsecret leaked") == f"the key {REDACTED} leaked"


def test_a_bad_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redactPatterns"):
        Redactor(["("])
