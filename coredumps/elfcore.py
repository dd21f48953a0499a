"""ELF core files read directly: header, notes, truncation and build-ids.

Only the ELF header, the program headers, the note segments and a page per
mapped library are read; the memory segments are never touched. This is the
first check every input passes before GDB sees it, and it gives facts that do
not depend on GDB: the signal and its siginfo, the PID, the threads, the
mapped files and the executable, and whether the kernel or systemd-coredump
cut the core short.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from coredumps.errors import BadInputError

ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF
NT_PRSTATUS = 1
NT_PRPSINFO = 3
NT_AUXV = 6
NT_GNU_BUILD_ID = 3
NT_SIGINFO = 0x53494749
NT_FILE = 0x46494C45
AT_PHDR = 3
MAX_NOTES_BYTES = 256 * 2**20
_MACHINES = {3: "i386", 62: "x86_64", 183: "aarch64", 40: "arm", 243: "riscv64", 21: "ppc64", 22: "s390x"}


@dataclass(frozen=True)
class Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    file_offset: int
    path: str


@dataclass
class CoreNotes:
    """What the core's notes say, independent of GDB."""

    machine: str
    file_size: int
    expected_size: int
    signal: int = 0
    si_code: int | None = None
    si_errno: int = 0
    fault_address: int | None = None
    sender_pid: int | None = None
    pid: int | None = None
    thread_count: int = 0
    comm: str = ""
    psargs: str = ""
    uid: int | None = None
    mappings: list[Mapping] = field(default_factory=list)
    auxv: dict[int, int] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    word: int = 8
    endian: str = "<"

    @property
    def truncated(self) -> bool:
        return self.file_size < self.expected_size

    @property
    def executable(self) -> str | None:
        """The main executable's path as the process saw it (from AT_PHDR), if recorded."""
        phdr = self.auxv.get(AT_PHDR)
        if phdr is not None:
            for mapping in self.mappings:
                if mapping.start <= phdr < mapping.end:
                    return mapping.path
        return self.mappings[0].path if self.mappings else None

    def mapped_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for mapping in self.mappings:
            seen.setdefault(mapping.path, None)
        return list(seen)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _iter_notes(data: bytes, endian: str) -> list[tuple[str, int, bytes]]:
    notes: list[tuple[str, int, bytes]] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        pos += 12
        name_end = pos + namesz
        desc_start = pos + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(data):
            break
        notes.append((_cstr(data[pos:name_end]), ntype, data[desc_start:desc_end]))
        pos = desc_start + ((descsz + 3) & ~3)
    return notes


class _Reader:
    def __init__(self, handle: BinaryIO, size: int, path: Path) -> None:
        self.handle = handle
        self.size = size
        self.path = path

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer (or none) where the file ends first."""
        if offset < 0 or offset >= self.size or length <= 0:
            return b""
        self.handle.seek(offset)
        return self.handle.read(min(length, self.size - offset))


def _header(reader: _Reader) -> tuple[int, str, int, int, int, int, str]:
    ident = reader.read(0, 64)
    if len(ident) < 16 or not ident.startswith(b"\x7fELF"):
        raise BadInputError(f"{reader.path}: not an ELF core file (no ELF magic); it is not a coredump")
    elf_class, data_enc = ident[4], ident[5]
    if elf_class not in (1, 2) or data_enc not in (1, 2):
        raise BadInputError(f"{reader.path}: corrupt ELF header (class {elf_class}, encoding {data_enc})")
    endian = "<" if data_enc == 1 else ">"
    word = 8 if elf_class == 2 else 4
    if len(ident) < (64 if word == 8 else 52):
        raise BadInputError(f"{reader.path}: cut short inside its ELF header; it cannot be analysed")
    e_type, e_machine = struct.unpack_from(endian + "HH", ident, 16)
    if e_type != ET_CORE:
        kind = {1: "a relocatable object", 2: "an executable", 3: "a shared library or PIE executable"}
        raise BadInputError(
            f"{reader.path}: is {kind.get(e_type, f'an ELF file of type {e_type}')}, not a core file"
        )
    if word == 8:
        phoff, shoff = struct.unpack_from(endian + "QQ", ident, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", ident, 54)
    else:
        phoff, shoff = struct.unpack_from(endian + "II", ident, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", ident, 42)
    if phnum == PN_XNUM:
        # The real count sits in section header 0's sh_info.
        sh = reader.read(shoff, 64)
        offset = 44 if word == 8 else 28
        if len(sh) < offset + 4:
            raise BadInputError(f"{reader.path}: cut short before its program headers end; it cannot be analysed")
        phnum = struct.unpack_from(endian + "I", sh, offset)[0]
    machine = _MACHINES.get(e_machine, f"machine-{e_machine}")
    return word, endian, phoff, phentsize, phnum, e_machine, machine


def _segments(
    reader: _Reader, word: int, endian: str, phoff: int, phentsize: int, phnum: int
) -> list[tuple[int, Segment]]:
    needed = 56 if word == 8 else 32
    if phentsize < needed:
        raise BadInputError(f"{reader.path}: corrupt ELF header (program header size {phentsize}, not {needed})")
    if phentsize * phnum > MAX_NOTES_BYTES:
        raise BadInputError(f"{reader.path}: corrupt ELF header (an implausible {phnum} program headers)")
    table = reader.read(phoff, phentsize * phnum)
    if len(table) < phentsize * phnum or phnum == 0:
        raise BadInputError(f"{reader.path}: cut short before its program headers end; it cannot be analysed")
    out: list[tuple[int, Segment]] = []
    for index in range(phnum):
        base = index * phentsize
        if word == 8:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz = struct.unpack_from(
                endian + "IIQQQQQ", table, base
            )
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz = struct.unpack_from(endian + "IIIIII", table, base)
        out.append((p_type, Segment(p_vaddr, p_offset, p_filesz, p_memsz)))
    return out


def _parse_prstatus(notes: CoreNotes, desc: bytes) -> None:
    notes.thread_count += 1
    if notes.thread_count > 1 or len(desc) < 36:
        return
    e = notes.endian
    si_signo, si_code, si_errno = struct.unpack_from(e + "iii", desc, 0)
    cursig = struct.unpack_from(e + "h", desc, 12)[0]
    pid_off = 32 if notes.word == 8 else 24
    notes.pid = struct.unpack_from(e + "i", desc, pid_off)[0]
    if not notes.signal:
        notes.signal = cursig or si_signo
    notes.si_errno = notes.si_errno or si_errno
    if notes.si_code is None and si_code:
        notes.si_code = si_code


def _parse_prpsinfo(notes: CoreNotes, desc: bytes) -> None:
    e = notes.endian
    if notes.word == 8 and len(desc) >= 136:
        notes.uid = struct.unpack_from(e + "I", desc, 16)[0]
        notes.comm = _cstr(desc[40:56])
        notes.psargs = _cstr(desc[56:136]).strip()
    elif notes.word == 4 and len(desc) >= 124:
        notes.uid = struct.unpack_from(e + "H", desc, 12)[0]
        notes.comm = _cstr(desc[28:44])
        notes.psargs = _cstr(desc[44:124]).strip()


def _parse_siginfo(notes: CoreNotes, desc: bytes) -> None:
    e = notes.endian
    if len(desc) < 16:
        return
    signo, errno_, code = struct.unpack_from(e + "iii", desc, 0)
    notes.signal = signo or notes.signal
    notes.si_errno = errno_
    notes.si_code = code
    union = 16 if notes.word == 8 else 12
    if signo in (4, 5, 7, 8, 11):  # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV carry si_addr
        fmt = "Q" if notes.word == 8 else "I"
        if len(desc) >= union + notes.word:
            notes.fault_address = struct.unpack_from(e + fmt, desc, union)[0]
    elif code <= 0 and len(desc) >= union + 4:  # sent by kill/tkill/sigqueue: si_pid
        notes.sender_pid = struct.unpack_from(e + "i", desc, union)[0]


def _parse_file_note(notes: CoreNotes, desc: bytes) -> None:
    e, w = notes.endian, notes.word
    fmt = e + ("Q" if w == 8 else "I")
    if len(desc) < 2 * w:
        return
    count = struct.unpack_from(fmt, desc, 0)[0]
    page = struct.unpack_from(fmt, desc, w)[0]
    table_end = 2 * w + count * 3 * w
    if table_end > len(desc):
        return
    names = desc[table_end:].split(b"\x00")
    for index in range(count):
        start, end, pgoff = struct.unpack_from(e + ("QQQ" if w == 8 else "III"), desc, 2 * w + index * 3 * w)
        name = names[index].decode("utf-8", "replace") if index < len(names) else ""
        notes.mappings.append(Mapping(start, end, pgoff * page, name))


def _parse_auxv(notes: CoreNotes, desc: bytes) -> None:
    fmt = notes.endian + ("QQ" if notes.word == 8 else "II")
    step = 2 * notes.word
    for pos in range(0, len(desc) - step + 1, step):
        key, value = struct.unpack_from(fmt, desc, pos)
        if key == 0:
            break
        notes.auxv[key] = value


def read_core_notes(path: Path) -> CoreNotes:
    """Parse the core's headers and notes; BadInputError when it is not a usable core.

    A core cut short after its notes is returned with ``truncated`` set: GDB can
    still analyse what is there. One cut short before its notes end is refused.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            return _read_notes(_Reader(handle, size, path))
        except (struct.error, ValueError, OSError) as exc:  # a field no well-formed core has
            raise BadInputError(f"{path}: a corrupt ELF core ({type(exc).__name__}: {exc}); it cannot be analysed") \
                from exc


def _read_notes(reader: _Reader) -> CoreNotes:
    path, size = reader.path, reader.size
    word, endian, phoff, phentsize, phnum, _e_machine, machine = _header(reader)
    segments = _segments(reader, word, endian, phoff, phentsize, phnum)
    loads = [seg for kind, seg in segments if kind == PT_LOAD]
    expected = max([phoff + phentsize * phnum] + [s.offset + s.filesz for _k, s in segments])
    notes = CoreNotes(
        machine=machine, file_size=size, expected_size=expected, segments=loads, word=word, endian=endian
    )
    note_segments = [seg for kind, seg in segments if kind == PT_NOTE]
    if not note_segments:
        raise BadInputError(f"{path}: has no notes segment; it is not a process coredump")
    for seg in note_segments:
        if seg.offset + seg.filesz > size:
            raise BadInputError(
                f"{path}: cut short before its notes end ({size} of at least {seg.offset + seg.filesz} bytes);"
                " it cannot be analysed"
            )
        if seg.filesz > MAX_NOTES_BYTES:
            raise BadInputError(f"{path}: its notes segment is implausibly large ({seg.filesz} bytes)")
        for name, ntype, desc in _iter_notes(reader.read(seg.offset, seg.filesz), endian):
            if name not in ("CORE", "LINUX"):
                continue
            if ntype == NT_PRSTATUS and name == "CORE":
                _parse_prstatus(notes, desc)
            elif ntype == NT_PRPSINFO:
                _parse_prpsinfo(notes, desc)
            elif ntype == NT_SIGINFO:
                _parse_siginfo(notes, desc)
            elif ntype == NT_FILE:
                _parse_file_note(notes, desc)
            elif ntype == NT_AUXV:
                _parse_auxv(notes, desc)
    if notes.thread_count == 0:
        raise BadInputError(f"{path}: holds no thread state (no NT_PRSTATUS note); it is not a process coredump")
    return notes


def _build_id_from_elf_image(read: object, word: int, endian: str) -> str | None:
    """Find NT_GNU_BUILD_ID in an ELF image given a reader ``read(offset, length) -> bytes``."""
    assert callable(read)
    head: bytes = read(0, 64)
    if len(head) < 52 or not head.startswith(b"\x7fELF"):
        return None
    endian = "<" if head[5] == 1 else ">"
    word = 8 if head[4] == 2 else 4
    if word == 8:
        phoff = struct.unpack_from(endian + "Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
    else:
        phoff = struct.unpack_from(endian + "I", head, 28)[0]
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
    if phnum == 0 or phnum > 256:
        return None
    table: bytes = read(phoff, phentsize * phnum)
    for index in range(phnum):
        base = index * phentsize
        if len(table) < base + phentsize:
            return None
        if word == 8:
            p_type, _f, p_offset, _v, _p, p_filesz = struct.unpack_from(endian + "IIQQQQ", table, base)
        else:
            p_type, p_offset, _v, _p, p_filesz = struct.unpack_from(endian + "IIIII", table, base)
        if p_type != PT_NOTE or p_filesz > 1 << 16:
            continue
        for name, ntype, desc in _iter_notes(read(p_offset, p_filesz), endian):
            if name == "GNU" and ntype == NT_GNU_BUILD_ID and desc:
                return desc.hex()
    return None


def build_id_of_file(path: Path) -> str | None:
    """The GNU build-id of an ELF file on disk, or None."""
    try:
        with open(path, "rb") as handle:

            def read(offset: int, length: int) -> bytes:
                handle.seek(offset)
                return handle.read(length)

            return _build_id_from_elf_image(read, 8, "<")
    except OSError:
        return None


def build_ids_from_core(path: Path, notes: CoreNotes) -> dict[str, str]:
    """Build-ids of the mapped ELF files, read from the ELF headers the kernel dumps into the core."""
    result: dict[str, str] = {}
    try:
        handle = open(path, "rb")
    except OSError:
        return result
    with handle:
        for mapping in notes.mappings:
            if mapping.file_offset != 0 or mapping.path in result:
                continue
            segment = next(
                (s for s in notes.segments if s.vaddr <= mapping.start < s.vaddr + s.filesz and s.filesz), None
            )
            if segment is None:
                continue
            base = segment.offset + (mapping.start - segment.vaddr)
            limit = segment.offset + segment.filesz

            def read(offset: int, length: int, base: int = base, limit: int = limit) -> bytes:
                start = base + offset
                if start >= limit or start >= notes.file_size:
                    return b""
                handle.seek(start)
                return handle.read(min(length, limit - start))

            build_id = _build_id_from_elf_image(read, notes.word, notes.endian)
            if build_id:
                result[mapping.path] = build_id
    return result
