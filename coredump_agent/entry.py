"""The ``coredump-agent`` console script.

``analyze`` spends most of its time in GDB loading the core. GDB is started here, before the
command-line module and its imports load, so that its start-up overlaps setting up the command.
Everything else goes straight to ``cli.main``.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence


def subcommand(argv: Sequence[str]) -> str | None:
    """The command word of a command line (the first word that is not an option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main() -> None:
    argv = sys.argv[1:]
    early_gdb = None
    if subcommand(argv) == "analyze" and not {"-h", "--help"} & set(argv):
        # A short command: the cyclic collector, and pydantic's scan of every installed
        # package for plugins (none are used), would only add to its run time.
        gc.disable()
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        from coredumps.gdb import start_early

        early_gdb = start_early()
    try:
        from coredump_agent.cli import main as run

        code = run(argv, early_gdb)
    finally:
        if early_gdb is not None:
            early_gdb.close()
    gc.freeze()  # the exit need not collect every import's garbage one object at a time
    sys.exit(code)


if __name__ == "__main__":
    main()
