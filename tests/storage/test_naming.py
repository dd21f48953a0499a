"""Object names: the original's pattern, sanitised so no input escapes its folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from coredumps.storage import StoreRequest, object_name
from coredumps.storage.base import (
    PART_MAX,
    instance_folder,
    is_core_name,
    name_timestamp,
    sanitize,
    sidecar_name_for,
)

MOMENT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def request(pod: str | None = "milvus-querynode-0", container: str | None = "querynode") -> StoreRequest:
    return StoreRequest(Path("core"), "milvus-a", MOMENT, pod, container, {})


@pytest.mark.parametrize(
    ("compression", "expected"),
    [
        ("zstd", "20250304T050607Z_milvus-querynode-0_querynode.core.zst"),
        ("gzip", "20250304T050607Z_milvus-querynode-0_querynode.core.gz"),
        ("none", "20250304T050607Z_milvus-querynode-0_querynode.core"),
    ],
)
def test_object_name_follows_timestamp_pod_container(compression: str, expected: str) -> None:
    assert object_name(request(), compression) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc", "_.._etc"),
        ("..", "unknown"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("a b\nc", "a_b_c"),
        ("pod/with/slashes", "pod_with_slashes"),
        ("naïve-påd", "na_ve-p_d"),
        ("ok_name-1.2", "ok_name-1.2"),
        ("", "unknown"),
        (None, "unknown"),
        ("\x00\x01", "unknown"),
    ],
)
def test_sanitize_keeps_only_safe_characters(raw: str | None, expected: str) -> None:
    assert sanitize(raw) == expected


@pytest.mark.parametrize("hostile", ["../../etc", "a\nb c", "..", "/abs/path", "x/../../y", "猫" * 300, "." * 9])
def test_hostile_names_give_one_plain_file_name(hostile: str) -> None:
    name = object_name(request(hostile, hostile), "zstd")
    assert "/" not in name
    assert not name.startswith(".")
    assert len(name.encode()) < 255
    assert Path(name).name == name


def test_long_names_are_bounded_and_stay_distinct() -> None:
    first, second = sanitize("p" * 300 + "a"), sanitize("p" * 300 + "b")
    assert len(first) == len(second) == PART_MAX
    assert first != second


def test_instance_folder_is_sanitised_and_never_empty() -> None:
    assert instance_folder("") == "unknown"
    assert instance_folder("../milvus") == "_milvus"
    assert instance_folder("my-milvus") == "my-milvus"


def test_timestamps_are_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert name_timestamp(datetime(2025, 3, 4, 14, 6, 7, tzinfo=tokyo)) == "20250304T050607Z"
    assert name_timestamp(datetime(2025, 3, 4, 5, 6, 7)) == "20250304T050607Z"


@pytest.mark.parametrize(
    ("name", "sidecar"),
    [("a_b_c.core.zst", "a_b_c.json"), ("a_b_c.core.gz", "a_b_c.json"), ("a_b_c.core", "a_b_c.json")],
)
def test_sidecar_shares_the_stem(name: str, sidecar: str) -> None:
    assert sidecar_name_for(name) == sidecar
    assert is_core_name(name)
    assert not is_core_name(sidecar)
    assert not is_core_name("." + name + ".1234.tmp")
