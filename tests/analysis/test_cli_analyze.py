"""``coredump-agent analyze`` as a user runs it: real cores, bad input, timeouts, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, CoreFactory, run_cli


def test_json_result_has_every_documented_field(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("threads")
    result = run_cli("analyze", str(core), "--exe", str(exe), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "executable",
        "pid",
        "signal",
        "si_code",
        "fault_address",
        "crash_reason",
        "thread_count",
        "crashing_thread",
        "frames",
        "threads",
        "stack_trace",
        "registers",
        "libraries",
        "is_panic",
        "signature",
        "score",
    ):
        assert key in data, key
    assert data["signal"] == {"number": 11, "name": "SIGSEGV"}
    assert set(data["frames"][0]) == {"index", "function", "file", "line", "library", "address"}
    breakdown = data["score"]["breakdown"]
    assert sum(breakdown.values()) == pytest.approx(data["score"]["total"]) or data["score"]["total"] == 10.0
    assert breakdown["base"] == 4.0 and breakdown["multi_thread"] == 0.5 and breakdown["pod_association"] == 0.0
    assert "Score breakdown [" in result.stderr and "-> total: " in result.stderr


def test_readable_report_and_chinese_breakdown_line(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, exe = crash_cores("abort")
    config = tmp_path / "config.yaml"
    config.write_text("agent:\n  logLanguage: zh\n")
    result = run_cli("--config", str(config), "analyze", str(core), "--exe", str(exe))
    assert result.returncode == 0, result.stderr
    assert "Crash reason:   Assertion failed (SIGABRT)" in result.stdout
    assert "分数计算详情 [" in result.stderr and "基础分: 4.0" in result.stderr and "-> 总分: " in result.stderr


def _bad_inputs(tmp: Path, crash_cores: CoreFactory) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.core"
    empty.write_bytes(b"")
    random_bytes = tmp / "random.core"
    random_bytes.write_bytes(os.urandom(4096))
    text = tmp / "notes.txt"
    text.write_text("this is not a core\n" * 100)
    core, _ = crash_cores("segv")
    cut = tmp / "cut.core"
    cut.write_bytes(core.read_bytes()[:600])  # inside the program headers / notes
    corrupt = tmp / "core.zst"
    packed = subprocess.run(["zstd", "-c", str(core)], capture_output=True, check=True).stdout
    corrupt.write_bytes(packed[: len(packed) // 2])
    fifo = tmp / "fifo.core"
    os.mkfifo(fifo)
    not_a_core = tmp / "core.junk.zst"  # a good zstd archive of something that is not a core
    not_a_core.write_bytes(subprocess.run(["zstd", "-c"], input=os.urandom(8192), capture_output=True,
                                          check=True).stdout)
    header = bytearray(core.read_bytes()[:64])
    no_entry_size = tmp / "phentsize.core"  # e_phentsize 0: a program header of no bytes
    no_entry_size.write_bytes(bytes(header[:54]) + b"\0\0" + bytes(header[56:]) + core.read_bytes()[64:])
    far = tmp / "phoff.core"  # e_phoff 2**62: program headers far beyond the file and any seek
    far.write_bytes(bytes(header[:32]) + (2**62).to_bytes(8, "little") + bytes(header[40:]) + core.read_bytes()[64:])
    return {
        "empty": (empty, "is empty"),
        "random": (random_bytes, "not an ELF core file"),
        "text": (text, "not an ELF core file"),
        "cut-before-notes": (cut, "cut short before"),
        "corrupt-zst": (corrupt, "corrupt or cut short"),
        "directory": (tmp, "is a directory"),
        "fifo": (fifo, "not a regular file"),
        "missing": (tmp / "no-such-core", "no such file"),
        "phentsize-0": (no_entry_size, "corrupt ELF header (program header size 0, not 56)"),
        "phoff-huge": (far, "cut short before its program headers end"),
        "zst-not-a-core": (not_a_core, "core.junk.zst (once decompressed): not an ELF core file"),
    }


@pytest.mark.parametrize(
    "case", ["empty", "random", "text", "cut-before-notes", "corrupt-zst", "directory", "fifo", "missing",
             "phentsize-0", "phoff-huge", "zst-not-a-core"]
)
def test_bad_input_is_one_clear_line_and_exit_2(case: str, tmp_path: Path, crash_cores: CoreFactory) -> None:
    path, expected = _bad_inputs(tmp_path, crash_cores)[case]
    result = run_cli("analyze", str(path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    json_result = run_cli("analyze", str(path), "--json")
    assert json_result.returncode == 2
    assert expected in json.loads(json_result.stdout)["error"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_unreadable_core_is_bad_input(tmp_path: Path, crash_cores: CoreFactory) -> None:
    core, _ = crash_cores("segv")
    target = tmp_path / "core"
    target.write_bytes(core.read_bytes())
    os.chown(target, 65534, 65534)
    target.chmod(0o600)
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *CLI, "analyze", str(target)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "permission denied" in result.stderr and "Traceback" not in result.stderr


def test_gdb_timeout_kills_gdb_and_exits_3(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("stack-overflow")
    result = run_cli(
        "analyze", str(core), "--exe", str(exe), "--json", env={"COREDUMP_AGENT_ANALYZER__GDBTIMEOUT": "200ms"}
    )
    assert result.returncode == 3
    assert "analyzer.gdbTimeout" in result.stderr and "Traceback" not in result.stderr
    assert "gdbTimeout" in json.loads(result.stdout)["error"]


def test_missing_exe_is_bad_input(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _ = crash_cores("segv")
    result = run_cli("analyze", str(core), "--exe", str(tmp_path / "nope"))
    assert result.returncode == 2 and "--exe" in result.stderr


def test_bad_config_value_fails_at_start_with_key_path(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, _ = crash_cores("segv")
    config = tmp_path / "config.yaml"
    config.write_text("analyzer:\n  gdbTimeout: soon\n")
    result = run_cli("--config", str(config), "analyze", str(core))
    assert result.returncode == 2
    assert "analyzer.gdbTimeout" in result.stderr and "'soon' is not a duration" in result.stderr


@pytest.mark.parametrize("command", [[], ["analyze"], ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "usage: coredump-agent" in result.stdout


def test_a_relative_exe_is_found_from_the_current_folder(crash_cores: CoreFactory) -> None:
    core, exe = crash_cores("segv")
    result = run_cli("analyze", str(core), "--exe", exe.name, cwd=exe.parent)
    assert result.returncode == 0, result.stderr
    assert "in segment_rows at" in result.stdout and "No such file" not in result.stderr


def test_a_hostile_file_name_never_reaches_the_terminal_raw(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, exe = crash_cores("segv")
    hostile = tmp_path / "core.\x1b[31mred\x1b]0;title\x07"
    hostile.write_bytes(core.read_bytes())
    result = run_cli("analyze", str(hostile), "--exe", str(exe))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "core.\\x1b[31mred" in result.stdout and "core.\\x1b[31mred" in result.stderr


def test_json_output_stays_valid_for_a_name_that_is_not_utf8(crash_cores: CoreFactory, tmp_path: Path) -> None:
    core, exe = crash_cores("segv")
    name = os.fsencode(tmp_path) + b"/core.bad\xffname"
    with open(name, "wb") as out:
        out.write(core.read_bytes())
    result = subprocess.run([*CLI, "analyze", os.fsdecode(name), "--exe", str(exe), "--json"], capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.decode("utf-8"))
    assert data["path"] == os.fsdecode(name)
