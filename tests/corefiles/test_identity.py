"""File identity, folder containment and the reasons a core is skipped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coredumps.config import CollectorConfig
from coredumps.corefiles import FileIdentity, identify, inside_folder, skip_reason
from coredumps.errors import BadInputError


@pytest.fixture
def core(tmp_path: Path) -> Path:
    path = tmp_path / "core.milvus.1234"
    path.write_bytes(b"\x7fELF" + b"\0" * 60)
    return path


def test_identify_reads_the_file_identity(core: Path) -> None:
    st = os.stat(core)
    ident = identify(core, "node-a")
    assert ident == FileIdentity(node="node-a", device=st.st_dev, inode=st.st_ino, size=64, mtime_ns=st.st_mtime_ns)
    assert ident.key() == f"node-a:{st.st_dev}:{st.st_ino}:64:{st.st_mtime_ns}"


def test_the_key_is_stable_and_changes_when_the_file_grows(core: Path) -> None:
    first = identify(core, "node-a").key()
    assert identify(core, "node-a").key() == first
    with open(core, "ab") as handle:
        handle.write(b"more")
    os.utime(core, ns=(1, 1_700_000_000_000_000_000))
    assert identify(core, "node-a").key() != first
    assert identify(core, "node-b").key() != identify(core, "node-a").key()


def test_the_key_stays_within_255_characters_for_a_long_node_name(core: Path) -> None:
    long_node = "n" * 253
    key = identify(core, long_node).key()
    assert len(key) <= 255
    assert key == identify(core, long_node).key()
    assert key != identify(core, "n" * 252).key()


def test_identify_refuses_a_symlink(core: Path, tmp_path: Path) -> None:
    link = tmp_path / "core.link.1"
    link.symlink_to(core)
    with pytest.raises(BadInputError, match="is a symbolic link"):
        identify(link, "node-a")


def test_identify_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "core.dangling.1"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(BadInputError, match="is a symbolic link"):
        identify(link, "node-a")


def test_identify_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "core.fifo.1"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        identify(fifo, "node-a")


def test_identify_refuses_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "core.dir.1"
    folder.mkdir()
    with pytest.raises(BadInputError, match="is a directory"):
        identify(folder, "node-a")


def test_identify_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        identify(tmp_path / "core.gone.1", "node-a")


def test_identify_shows_control_characters_escaped(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as info:
        identify(tmp_path / "core.evil\nname.1", "node-a")
    assert "\n" not in str(info.value) and "\\n" in str(info.value)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/watched/{sub/deep, out -> ../outside, passwd -> outside/secret}, tmp/watched-evil, tmp/outside."""
    watched = tmp_path / "watched"
    (watched / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("x")
    (tmp_path / "watched-evil").mkdir()
    (watched / "out").symlink_to(tmp_path / "outside")
    (watched / "passwd").symlink_to(tmp_path / "outside" / "secret")
    (tmp_path / "alias").symlink_to(watched)
    return watched


@pytest.mark.parametrize(
    ("relative", "inside"),
    [
        ("watched/core.1", True),
        ("watched/sub/deep/core.1", True),
        ("watched/sub/../core.1", True),
        ("watched/passwd", True),
        ("alias/core.1", True),
        ("watched", False),
        ("watched/.", False),
        ("watched/..", False),
        ("watched/../outside/secret", False),
        ("watched/sub/../../outside/secret", False),
        ("watched/sub/deep/../../../outside/secret", False),
        ("watched/out/secret", False),
        ("watched/out/../outside/secret", False),
        ("watched-evil/core.1", False),
        ("outside/secret", False),
    ],
)
def test_inside_folder(tree: Path, relative: str, inside: bool) -> None:
    assert inside_folder(tree.parent / relative, tree) is inside


def test_inside_folder_when_the_folder_is_given_through_a_symlink(tree: Path) -> None:
    alias = tree.parent / "alias"
    assert inside_folder(tree / "core.1", alias)
    assert not inside_folder(tree.parent / "outside" / "secret", alias)


def _stat(path: Path, size: int, age: float, now: float) -> os.stat_result:
    path.write_bytes(b"\0" * size)
    os.utime(path, (now - age, now - age))
    return os.stat(path)


NOW = time.time()
COLLECTOR = CollectorConfig(max_file_age=3600, max_file_size=1000)


def test_a_fresh_small_core_is_processed(tmp_path: Path) -> None:
    path = tmp_path / "core.milvus.1"
    assert skip_reason(path, _stat(path, 10, 60, NOW), NOW, COLLECTOR, ["livenessProbe"]) is None


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (7200, "older than maxFileAge (2h > 1h)"),
        (90061, "older than maxFileAge (1d1h1m1s > 1h)"),
    ],
)
def test_an_old_core_is_skipped(tmp_path: Path, age: float, reason: str) -> None:
    path = tmp_path / "core.milvus.1"
    assert skip_reason(path, _stat(path, 10, age, NOW), NOW, COLLECTOR, []) == reason


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (2500, "larger than maxFileSize (2.5 KB > 1.0 KB)"),
        (1001, "larger than maxFileSize (1001 B > 1000 B)"),
    ],
)
def test_a_large_core_is_skipped(tmp_path: Path, size: int, reason: str) -> None:
    path = tmp_path / "core.milvus.1"
    assert skip_reason(path, _stat(path, size, 0, NOW), NOW, COLLECTOR, []) == reason


def test_a_core_at_the_limits_is_processed(tmp_path: Path) -> None:
    path = tmp_path / "core.milvus.1"
    assert skip_reason(path, _stat(path, 1000, 3599, NOW), NOW, COLLECTOR, []) is None


def test_zero_limits_mean_no_limit(tmp_path: Path) -> None:
    path = tmp_path / "core.milvus.1"
    unlimited = CollectorConfig(max_file_age=0, max_file_size=0)
    assert skip_reason(path, _stat(path, 5000, 10**8, NOW), NOW, unlimited, []) is None


@pytest.mark.parametrize(
    ("name", "patterns", "reason"),
    [
        ("core.livenessProbe.1", ["livenessProbe", "readinessProbe"], 'matches ignorePatterns entry "livenessProbe"'),
        (
            r"core.milvus\x2dprobe.0.0123456789abcdef0123456789abcdef.1.2.zst",
            ["milvus-probe"],
            'matches ignorePatterns entry "milvus-probe"',
        ),
        ("core.milvus.1", ["", "probe"], None),
        ("core.milvus.1", [], None),
    ],
)
def test_ignore_patterns(tmp_path: Path, name: str, patterns: list[str], reason: str | None) -> None:
    path = tmp_path / name
    assert skip_reason(path, _stat(path, 10, 0, NOW), NOW, COLLECTOR, patterns) == reason
