"""The web dashboard: server-rendered pages over the coredump database, and the viewer launcher."""

from coredump_agent.dashboard.access import TOKEN_ENV, UnsafeBindError, check_bind
from coredump_agent.dashboard.app import Launcher, ViewerLister, create_app

__all__ = ["TOKEN_ENV", "Launcher", "UnsafeBindError", "ViewerLister", "check_bind", "create_app"]
