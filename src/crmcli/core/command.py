"""The command line being run, for the audit trail. Stdlib only: the CLI root sets it before any
heavy import."""

from __future__ import annotations

from contextvars import ContextVar

#: e.g. "crm customer add"; scripts using the Python API see "python".
current_command: ContextVar[str] = ContextVar("current_command", default="python")
