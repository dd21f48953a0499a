"""Fixtures for the storage tests: core-like files and a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.s3server import UNSET_AWS_VARIABLES, MotoServer, fake_aws_environment

_bucket_numbers = itertools.count(1)


def write_core_like(path: Path, size: int, seed: int = 7) -> Path:
    """A file that compresses like a core: zero pages, repeated records and random bytes."""
    rng = random.Random(seed)
    record = rng.randbytes(48)
    block = 64 * 1024
    with open(path, "wb") as out:
        written = 0
        for index in itertools.count():
            if written >= size:
                break
            kind = index % 4
            if kind == 0:
                data = bytes(block)
            elif kind == 1:
                data = rng.randbytes(block)
            else:
                data = b"".join(record + i.to_bytes(16, "little") for i in range(block // 64))
            data = data[: size - written]
            out.write(data)
            written += len(data)
    return path


@pytest.fixture
def make_core(tmp_path: Path) -> Callable[..., Path]:
    def make(size: int = 3 * 2**20, name: str = "core.raw", seed: int = 7) -> Path:
        return write_core_like(tmp_path / name, size, seed)

    return make


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment, and nothing else for botocore to find."""
    for name in UNSET_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_aws_environment(tmp_path).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3client(moto_server: MotoServer, aws_env: None) -> Any:
    return boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")


@pytest.fixture
def bucket(s3client: Any) -> str:
    name = f"cores-{next(_bucket_numbers)}"
    s3client.create_bucket(Bucket=name)
    return name
