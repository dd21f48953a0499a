"""The ``coredump-agent`` command line.

Exit status: 0 success; 2 bad input or a bad config value; 3 GDB timeout;
4 a tool or service the command needs is missing or failed; 1 anything else.
Errors are one line on stderr (and ``{"error": ...}`` on stdout with --json),
never a traceback. Heavy imports happen inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from coredump_agent.commands.args import set_agent_log_level
from coredump_agent.entry import subcommand
from coredumps.errors import AnalysisTimeoutError, BadInputError, ConfigError, CoredumpError
from coredumps.inputs import is_utf8

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_UNAVAILABLE = 4

Handler = Callable[[argparse.Namespace], int]


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, (BadInputError, ConfigError)):
        return EXIT_BAD_INPUT
    if isinstance(exc, AnalysisTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, CoredumpError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILURE


def _prefect_unreachable(exc: BaseException) -> str | None:
    """The sentence for a Prefect API that cannot be reached (Prefect raises a bare RuntimeError), else None."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and text.startswith("Failed to reach API at "):
        url = text.removeprefix("Failed to reach API at ").split()[0]
        return f"the Prefect API at {url} cannot be reached; start it or set PREFECT_API_URL to a running server"
    return None


def emit_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if not is_utf8(text):  # a file name that is not UTF-8: \udcXX escapes keep the output valid JSON
        text = json.dumps(data, indent=2, ensure_ascii=True, default=str)
    sys.stdout.write(text + "\n")


def _add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from coredump_agent.commands import analyze

    parser = sub.add_parser(
        "analyze",
        help="Analyse one coredump with GDB and print its diagnosis and value score.",
        description=(
            "Analyse one coredump (raw, or systemd-coredump's .zst, .lz4 or .xz) with GDB: signal, crash reason, "
            "frames, threads, registers, libraries, crash signature and the value score with its breakdown."
        ),
    )
    parser.add_argument("core", help="path of the core file")
    parser.add_argument("--exe", help="the crashed program's executable, for symbols (default: found from the core)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--ai", action="store_true",
        help="also ask the configured LLM (analyzer.aiAnalysis, key from the environment) for a root-cause "
        "write-up, within the hourly and monthly budget",
    )
    parser.set_defaults(handler=analyze.run)


# Each subcommand and the module under coredump_agent.commands that defines it, in --help order.
_COMMAND_MODULES = {
    "process": "process", "cleanup": "cleanup", "export-parquet": "export", "dashboard": "dashboard",
    "sensor": "sensor", "retention": "retention", "demo": "demo",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` (a known subcommand) only that one is set up."""
    parser = argparse.ArgumentParser(
        prog="coredump-agent",
        description="Catch, analyse, score and store the coredumps of crashed Milvus processes.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $COREDUMP_AGENT_CONFIG, else configs/config.yaml when present, else built-ins)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    known = command == "analyze" or command in _COMMAND_MODULES
    if not known or command == "analyze":
        _add_analyze(sub)
    for name, module in _COMMAND_MODULES.items():
        if not known or command == name:
            importlib.import_module(f"coredump_agent.commands.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, early_gdb: Any = None) -> int:
    """Run one command. ``early_gdb`` is a GDB the console script started first (see ``entry``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(subcommand(argv))
    args = parser.parse_args(argv)
    args.early_gdb = early_gdb
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    set_agent_log_level(logging.DEBUG if args.verbose else logging.INFO)  # until the config says otherwise
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("coredump-agent: interrupted\n")
        return 130
    except CoredumpError as exc:
        return _failed(args, str(exc), type(exc).__name__, _exit_code(exc))
    except Exception as exc:
        if (unreachable := _prefect_unreachable(exc)) is not None:
            return _failed(args, unreachable, "PrefectUnavailable", EXIT_UNAVAILABLE)
        # a bug: one line for the user, the traceback with -v
        logging.getLogger("coredump_agent").debug("unexpected error", exc_info=True)
        message = f"unexpected {type(exc).__name__}: {exc} (run with -v for details)"
        return _failed(args, message, "InternalError", EXIT_FAILURE)


def _failed(args: argparse.Namespace, message: str, kind: str, code: int) -> int:
    """The error in one line on stderr (and as JSON on stdout with --json); the exit status."""
    if getattr(args, "json", False):
        emit_json({"error": message, "kind": kind})
    sys.stderr.write(f"coredump-agent: error: {message}\n")
    return code


if __name__ == "__main__":
    from coredump_agent.entry import main as entry

    entry()
