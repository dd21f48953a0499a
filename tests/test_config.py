"""Config: every key documented, durations and sizes, environment overrides, clear errors, no secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from coredumps.config import Config, load_config
from coredumps.errors import ConfigError
from tests.conftest import REPO

SHIPPED = REPO / "configs" / "config.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        key = alias or (model.model_config.get("alias_generator").validation_alias(name))  # type: ignore[union-attr]
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def _flatten(data: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_shipped_config_documents_every_key() -> None:
    shipped = _flatten(yaml.safe_load(SHIPPED.read_text()))
    assert shipped == _keys(Config)


def test_shipped_config_equals_the_built_in_defaults() -> None:
    assert load_config(SHIPPED) == Config()


def test_durations_and_sizes_parse(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('analyzer:\n  gdbTimeout: "1h30m"\ncollector:\n  maxFileSize: "512MiB"\n  maxFileAge: 90\n')
    cfg = load_config(path)
    assert cfg.analyzer.gdb_timeout == 5400.0
    assert cfg.collector.max_file_size == 512 * 2**20
    assert cfg.collector.max_file_age == 90.0


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("analyzer:\n  valueThreshold: 5\n  maxFrames: 32\nstorage:\n  s3:\n    bucket: from-file\n")
    monkeypatch.setenv("COREDUMP_AGENT_ANALYZER__VALUETHRESHOLD", "8.5")
    monkeypatch.setenv("COREDUMP_AGENT_STORAGE__S3__BUCKET", "from-env")
    cfg = load_config(path)
    assert cfg.analyzer.value_threshold == 8.5
    assert cfg.analyzer.max_frames == 32
    assert cfg.storage.s3.bucket == "from-env"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("agent:\n  logLanguage: zh\n")
    monkeypatch.setenv("COREDUMP_AGENT_CONFIG", str(path))
    assert load_config().agent.log_language == "zh"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("analyzer:\n  gdbTimeout: soon\n", "analyzer.gdbTimeout: 'soon' is not a duration"),
        ("collector:\n  maxFileSize: lots\n", "collector.maxFileSize: 'lots' is not a size"),
        ("analyzer:\n  valueThreshold: 11\n", "analyzer.valueThreshold: Input should be less than or equal to 10"),
        ("storage:\n  backend: ftp\n", "storage.backend: Input should be 'local', 'nfs' or 's3'"),
        ("analyzer:\n  valueTreshold: 3\n", "analyzer.valueTreshold: unknown key"),
        ("agent: [1, 2]\n", "agent: Input should be a valid dictionary"),
        ("- just a list\n", "the top level must be a mapping"),
        ("analyzer: {gdbTimeout: 5m\n", "not valid YAML"),
        ("analyzer:\n  aiAnalysis:\n    redactPatterns: ['(unclosed']\n", "is not a valid regular expression"),
        ("analyzer:\n  gdbMemoryLimit: .inf\n", "analyzer.gdbMemoryLimit: 'inf' is larger than an exbibyte"),
        ("storage:\n  maxStorageSize: .nan\n", "storage.maxStorageSize: 'nan' is not a size"),
        ("analyzer:\n  gdbTimeout: .inf\n", "analyzer.gdbTimeout: 'inf' is longer than ten years"),
        ("analyzer:\n  gdbTimeout: 99999999999999d\n", "analyzer.gdbTimeout: '99999999999999d' is longer than ten"),
        ("analyzer:\n  gdbTimeout: .nan\n", "analyzer.gdbTimeout: 'nan' is not a duration"),
        ("analyzer:\n  gdbTimeout: 0s\n", "analyzer.gdbTimeout: Input should be greater than 0"),
        ("analyzer:\n  valueThreshold: 5\n  valueThreshold: 6\n", "the key 'valueThreshold' is given twice"),
        ("analyzer:\n  scoring: {base: -5}\n", "analyzer.scoring.base: Input should be greater than or equal to 0"),
        ("dashboard:\n  path: nope\n", "dashboard.path: String should match pattern"),
        ("storage:\n  maxStorageSize: '0.5'\n", "storage.maxStorageSize: '0.5' is not a whole number of bytes"),
        ("storage:\n  s3:\n    endpoint: http://user:s3cr3t@minio:9000\n",
         "storage.s3.endpoint: the URL must not hold credentials"),
        ("storage:\n  s3:\n    endpoint: not a url\n", "storage.s3.endpoint: the value is not an http(s) URL"),
        ("analyzer:\n  aiAnalysis:\n    baseURL: 'http://[::1/v1'\n", "analyzer.aiAnalysis.baseURL: the value is not a URL"),
    ],
)
def test_bad_value_names_its_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "variable"),
    [
        ("analyzer:\n  aiAnalysis:\n    apiKey: sk-abc123\n", "OPENAI_API_KEY"),
        ("storage:\n  s3:\n    accessKey: AKIAXXXX\n", "AWS_ACCESS_KEY_ID"),
        ("storage:\n  s3:\n    secretKey: shh\n", "AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_secrets_in_the_file_are_refused_without_echoing_them(tmp_path: Path, text: str, variable: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert variable in str(info.value)
    assert "sk-abc123" not in str(info.value) and "shh" not in str(info.value) and "AKIAXXXX" not in str(info.value)


def test_empty_secret_keys_of_the_original_config_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('storage:\n  s3:\n    accessKey: ""\n    secretKey: ""\nanalyzer:\n  aiAnalysis:\n    apiKey: ""\n')
    assert load_config(path).storage.s3.bucket == ""


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_environment_lists_are_json_and_keys_any_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("discovery:\n  namespaces: [from-file]\n")
    monkeypatch.setenv("COREDUMP_AGENT_DISCOVERY__NAMESPACES", '["milvus", "search"]')
    monkeypatch.setenv("COREDUMP_AGENT_ANALYZER__MAX_FRAMES", "48")
    monkeypatch.setenv("COREDUMP_AGENT_ANALYZER__SCORING__BASE", "3")
    cfg = load_config(path)
    assert cfg.discovery.namespaces == ["milvus", "search"]
    assert cfg.analyzer.max_frames == 48
    assert cfg.analyzer.scoring.base == 3


def test_variables_that_name_no_section_are_not_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COREDUMP_AGENT_DASHBOARD_TOKEN", "not-a-key")
    monkeypatch.setenv("COREDUMP_AGENT_S3_CREDENTIALS_FILE", "/nowhere")
    assert load_config(SHIPPED) == Config()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COREDUMP_AGENT_ANALYZER__VALUETHRESOLD", "6", "ANALYZER__VALUETHRESOLD: valuethresold is not a key"),
        ("COREDUMP_AGENT_DISCOVERY__NAMESPACES", "[milvus", "COREDUMP_AGENT_DISCOVERY__NAMESPACES: not valid JSON"),
        ("COREDUMP_AGENT_ANALYZER__MAXFRAMES__DEPTH", "1", "maxframes is a value, not a section"),
        ("COREDUMP_AGENT_ANALYZER__VALUETHRESHOLD", "eleven",
         "environment COREDUMP_AGENT_ANALYZER__VALUETHRESHOLD: analyzer.valueThreshold: Input should be a valid number"),
        ("COREDUMP_AGENT_ANALYZER__AIANALYSIS__BASEURL", "ftp://x/v1",
         "environment COREDUMP_AGENT_ANALYZER__AIANALYSIS__BASEURL: analyzer.aiAnalysis.baseURL: ftp://x is not"),
    ],
)
def test_bad_environment_overrides_are_clear(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(SHIPPED)
