"""Argument types shared by the commands: a bad value is one clear sentence from argparse, before any work."""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING

from coredumps.inputs import is_utf8

if TYPE_CHECKING:
    from coredumps.config import Config

AGENT_LOGGERS = ("coredumps", "coredump_agent", "flows", "tasks", "node_sensor")
"""The agent's own loggers: agent.logLevel sets their level (``-v``: debug, for every logger)."""


def set_agent_log_level(level: int) -> None:
    for name in AGENT_LOGGERS:
        logging.getLogger(name).setLevel(level)


def configured(args: argparse.Namespace) -> Config:
    """The config ``--config`` names (or the default one), with its agent.logLevel applied unless ``-v`` was given."""
    from coredumps.config import load_config

    cfg = load_config(args.config)
    if not getattr(args, "verbose", False):
        set_agent_log_level(logging.getLevelNamesMapping()[cfg.agent.log_level.upper()])
    return cfg


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


def utf8_text(text: str) -> str:
    """Text that must stay text in Prefect's parameters and the database: valid UTF-8 (a file name may not be)."""
    if not is_utf8(text):
        raise argparse.ArgumentTypeError(
            f"'{os.fsencode(text).decode('ascii', 'backslashreplace')}' is not valid UTF-8; a file with such a "
            "name must be renamed first")
    return text
