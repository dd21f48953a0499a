"""Releasing the source of a stored core: only the very file that was stored, and only when asked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coredumps.config import CollectorConfig, Config
from coredumps.intake import identify_file
from coredumps.records import FileFacts
from coredumps.storing import release_source

DELETE = CollectorConfig(delete_after_store=True)


def _facts(path: Path) -> FileFacts:
    return identify_file(path, "node-1", Config())[0]


def test_the_stored_file_is_deleted_only_when_configured(tmp_path: Path) -> None:
    core = tmp_path / "core.123"
    core.write_bytes(b"\x7fELF stored bytes")
    facts = _facts(core)
    assert release_source(facts, CollectorConfig()) is False and core.exists()
    assert release_source(facts, DELETE) is True and not core.exists()
    assert release_source(facts, DELETE) is True  # already gone: nothing left to release


@pytest.mark.parametrize("change", ["replaced", "grown"])
def test_a_file_that_changed_since_it_was_stored_is_kept(tmp_path: Path, change: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    core = tmp_path / "core"
    core.write_bytes(b"\x7fELF the first crash")
    facts = _facts(core)
    if change == "replaced":  # a kernel pattern without %p: the next crash's core under the same name
        fresh = tmp_path / ".next"
        fresh.write_bytes(b"\x7fELF the next crash!")
        os.replace(fresh, core)
    else:  # still being written when it was taken for finished
        with open(core, "ab") as out:
            out.write(b" and more")
    assert release_source(facts, DELETE) is False
    assert core.exists()
    assert "has changed since; it is kept" in caplog.text
