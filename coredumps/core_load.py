"""Start GDB loading a core: the ELF notes, the executable to load with it, the GDB launch.

    Loading(path, core, compression, exe, launch, timeout)  -> GDB is loading; .collect() waits
    prepare_core(path, exe)                                 -> the same with the default launch

Loading a big core takes GDB a while; everything here is cheap to import, so that a command
line can start the load first and read its config while GDB works.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from coredumps.elfcore import CoreNotes, build_id_of_file, build_ids_from_core, read_core_notes
from coredumps.errors import BadInputError, CoredumpError
from coredumps.gdb import DEFAULT_TIMEOUT, GdbLaunch, GdbSession, quote
from coredumps.inputs import check_regular_file, detect_compression

if TYPE_CHECKING:
    from coredumps.config import AnalyzerConfig


def gdb_launch(cfg: AnalyzerConfig, index_cache: str = "") -> GdbLaunch:
    """How the analyzer config starts GDB and loads a core; ``index_cache``: GDB's index cache folder, if any."""
    return GdbLaunch(  # GDB runs in a folder of its own: relative paths are made absolute here
        gdb_path=cfg.gdb_path, memory_limit=cfg.gdb_memory_limit, debuginfod_urls=tuple(cfg.debuginfod_urls),
        executable=_absolute(cfg.executable), sysroot=_absolute(cfg.sysroot),
        solib_search_path=tuple(_absolute(folder) for folder in cfg.solib_search_path), index_cache=index_cache,
    )


def _absolute(path: str) -> str:
    return os.path.abspath(path) if path else path


def notes_of(path: Path, core: Path) -> CoreNotes:
    """The notes of ``core``, the plain form of ``path``; a complaint about a scratch copy names ``path``."""
    try:
        return read_core_notes(core)
    except BadInputError as exc:
        if core == path:
            raise
        raise BadInputError(str(exc).replace(str(core), f"{path} (once decompressed)")) from exc


def resolve_executable(
    notes: CoreNotes, exe: str | None, launch: GdbLaunch, build_ids: dict[str, str], warnings: list[str]
) -> str | None:
    """The executable GDB loads with the core: --exe, the configured one, or the one the core names
    (under the sysroot) when its build-id matches; None, with a warning, when there is none."""
    if exe:
        path = Path(exe)
        if not path.is_file():
            raise BadInputError(f"{exe}: the executable given with --exe does not exist or is not a file")
        return str(path.absolute())
    if launch.executable:
        return launch.executable
    recorded = notes.executable
    if not recorded:
        warnings.append("the core does not record its executable; pass --exe for symbolised frames")
        return None
    candidate = Path(launch.sysroot) / recorded.lstrip("/") if launch.sysroot else Path(recorded)
    if not candidate.is_file():
        warnings.append(
            f"executable {recorded} is not on this machine; pass --exe or set analyzer.sysroot for symbolised frames"
        )
        return None
    expected = build_ids.get(recorded)
    actual = build_id_of_file(candidate)
    if expected and actual and expected != actual:
        warnings.append(
            f"{candidate} is not the binary that crashed (build-id {actual[:12]} != {expected[:12]});"
            " pass --exe with the right build"
        )
        return None
    return str(candidate)


OVERVIEW = ("-thread-info", "-file-list-shared-libraries", "-data-list-register-names")


class Loading:
    """A core whose ELF notes are read and which GDB is loading; ``close`` always kills GDB."""

    def __init__(
        self, path: Path, core: Path, compression: str, exe: str | None, launch: GdbLaunch, timeout: float,
        gdb: GdbSession | None = None,
    ) -> None:
        """``gdb`` is a session already started (see ``gdb.start_early``); it is used when it was
        started the way ``launch`` starts one, else it is closed and a fitting one started."""
        self.path, self.core, self.compression, self.exe, self.launch = path, core, compression, exe, launch
        if gdb is not None and gdb.started_as(launch):
            gdb.set_timeout(timeout)
            self.gdb = gdb
        else:
            if gdb is not None:
                gdb.close()
            # GDB starts first: its start-up overlaps reading the notes and finding the executable.
            self.gdb = GdbSession.start(launch, timeout)
        try:
            self.notes = notes_of(path, core)
            self.file_size = path.stat().st_size
            self.warnings: list[str] = []
            if self.notes.truncated:
                self.warnings.append(
                    f"the core is truncated ({self.notes.file_size} of {self.notes.expected_size} bytes, e.g. by"
                    " systemd-coredump's size limits); frames may be missing"
                )
            self.build_ids = build_ids_from_core(core, self.notes)
            self.executable = resolve_executable(self.notes, exe, launch, self.build_ids, self.warnings)
            self.pending = self.gdb.send(self._load_commands())
            # Nothing in these depends on the config: GDB answers them as soon as the core is in.
            self.overview = self.gdb.send(OVERVIEW)
        except BaseException:
            self.gdb.close()
            raise

    def _load_commands(self) -> list[str]:
        commands = []
        if self.launch.index_cache:
            folder = self.gdb.safe_path(self.launch.index_cache, "index-cache")  # the setting takes no quotes
            commands += [f"-gdb-set index-cache directory {folder}", "-gdb-set index-cache enabled on"]
        if self.launch.sysroot:
            commands.append(f"-gdb-set sysroot {quote(self.launch.sysroot)}")
        if self.launch.solib_search_path:
            commands.append(f"-gdb-set solib-search-path {quote(':'.join(self.launch.solib_search_path))}")
        if self.executable:
            commands.append(f"-file-exec-and-symbols {quote(self.executable)}")
        commands.append(f"-target-select core {self.gdb.safe_path(str(self.core), 'core')}")
        return commands

    def collect(self) -> None:
        """Wait for GDB to finish loading; the load's warnings join ``warnings``."""
        for result in self.gdb.collect(self.pending):
            if not result.ok:
                if result.command.startswith("-target-select"):
                    raise BadInputError(f"{self.core}: GDB cannot open it as a core: {result.error}")
                self.warnings.append(f"GDB: {result.error}")
            for line in result.log:
                text = line.strip()
                if text.startswith("warning:") and "too small" not in text and text not in self.warnings:
                    self.warnings.append(text)

    def fits(self, path: Path, exe: str | None, launch: GdbLaunch) -> bool:
        """Whether this load is the one ``launch`` would make (the index cache only changes its speed)."""
        ours, theirs = replace(self.launch, index_cache=""), replace(launch, index_cache="")
        return (self.path, self.exe, ours) == (path, exe, theirs)

    def close(self) -> None:
        self.gdb.close()


def prepare_core(path: Path, exe: str | None = None, gdb: GdbSession | None = None) -> Loading | None:
    """Start loading a raw core in GDB with the default launch, before the config is known.

    ``analyze_core`` takes the result over when the config launches GDB the same way and closes
    it otherwise. ``gdb`` is an early-started session to load the core into (see ``Loading``);
    like any load, it is used or closed. None for a compressed core (it needs the configured
    scratch folder) or for anything the full analysis should report itself.
    """
    try:
        check_regular_file(path)
        if detect_compression(path) == "none":
            return Loading(path, path, "none", exe, GdbLaunch(), DEFAULT_TIMEOUT, gdb)
    except (CoredumpError, OSError):
        pass
    if gdb is not None:
        gdb.close()
    return None
