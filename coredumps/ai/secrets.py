"""Where the LLM API key comes from: the environment or a mounted Secret file.

Lookup order: the variable ``aiAnalysis.apiKeyEnv`` names (default
``GLM_API_KEY`` for glm, ``OPENAI_API_KEY`` otherwise), then the file that
``COREDUMP_AGENT_AI_API_KEY_FILE`` points at. The key is never read from the
config file and never appears in a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from coredumps.config import AIAnalysisConfig
from coredumps.errors import ConfigError

API_KEY_FILE_ENV = "COREDUMP_AGENT_AI_API_KEY_FILE"
DEFAULT_KEY_ENV = {"glm": "GLM_API_KEY", "openai": "OPENAI_API_KEY", "openai-compatible": "OPENAI_API_KEY"}
_MAX_KEY_FILE_BYTES = 64 * 1024


def key_env_name(cfg: AIAnalysisConfig) -> str:
    """The environment variable that holds the key for this config."""
    return cfg.api_key_env or DEFAULT_KEY_ENV[cfg.provider]


def key_hint(cfg: AIAnalysisConfig) -> str:
    """Where a person should put the key, for error messages."""
    return f"{key_env_name(cfg)} (or the file named by {API_KEY_FILE_ENV})"


def api_key(cfg: AIAnalysisConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key, or None when neither the variable nor the file provides one."""
    env = os.environ if environ is None else environ
    name = key_env_name(cfg)
    value = env.get(name, "").strip()
    if value:
        return _checked(value, name)
    path = env.get(API_KEY_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        with open(Path(path), "rb") as handle:
            raw = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{API_KEY_FILE_ENV}: {path} cannot be read ({type(exc).__name__}).") from exc
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{API_KEY_FILE_ENV}: {path} is too large to be an API key.")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{API_KEY_FILE_ENV}: {path} is not UTF-8 text.") from exc
    return _checked(text, f"{API_KEY_FILE_ENV} ({path})") if text else None


def _checked(key: str, source: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise ConfigError(f"{source}: the API key holds whitespace or control characters; store the bare key.")
    return key
