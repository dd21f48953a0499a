"""The API key comes from the environment or a mounted Secret file, nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from coredumps.ai.secrets import API_KEY_FILE_ENV, api_key, key_env_name
from coredumps.errors import ConfigError
from tests.ai.conftest import ai_config


@pytest.mark.parametrize(("provider", "env_name"), [("glm", "GLM_API_KEY"), ("openai", "OPENAI_API_KEY"),
                                                     ("openai-compatible", "OPENAI_API_KEY")])
def test_the_provider_picks_the_variable(provider: str, env_name: str) -> None:
    cfg = ai_config(provider=provider)
    assert key_env_name(cfg) == env_name
    assert api_key(cfg, {env_name: " key-from-env \n"}) == "key-from-env"


def test_api_key_env_names_another_variable() -> None:
    cfg = ai_config(provider="glm", api_key_env="MY_LLM_KEY")
    assert api_key(cfg, {"GLM_API_KEY": "ignored", "MY_LLM_KEY": "mine"}) == "mine"


def test_a_mounted_secret_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("file-key-123\n")
    assert api_key(ai_config(provider="glm"), {API_KEY_FILE_ENV: str(secret)}) == "file-key-123"


def test_the_variable_wins_over_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("file-key")
    assert api_key(ai_config(provider="glm"), {"GLM_API_KEY": "env-key", API_KEY_FILE_ENV: str(secret)}) == "env-key"


def test_no_key_anywhere_is_none() -> None:
    assert api_key(ai_config(provider="openai-compatible"), {}) is None


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=API_KEY_FILE_ENV):
        api_key(ai_config(), {API_KEY_FILE_ENV: str(tmp_path / "missing")})


def test_a_key_with_inner_whitespace_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = tmp_path / "api-key"
    secret.write_text("first-line-secret\nsecond-line")
    with pytest.raises(ConfigError) as caught:
        api_key(ai_config(), {API_KEY_FILE_ENV: str(secret)})
    assert "first-line-secret" not in str(caught.value)
