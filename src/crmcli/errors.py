"""The one exception family of crmcli and the exit codes it maps to.

Core code raises these with a message that is already translated and says how to fix the problem;
the CLI root (crmcli.cli.app) turns them into ``Error: ...`` on stderr and the exit code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4  # ambiguous reference or a conflict with existing data
    REJECTED = 5  # input that failed validation (a bad value, an import with bad rows)
    INTERRUPTED = 130


class CrmError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class StoreError(CrmError):
    """The store cannot be opened, read or written (missing file, permissions, newer schema...)."""


class NotFound(CrmError):
    exit_code = ExitCode.NOT_FOUND


class Conflict(CrmError):
    exit_code = ExitCode.CONFLICT


class Ambiguous(Conflict):
    def __init__(self, message: str, candidates: Sequence[str], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.candidates = list(candidates)


class InvalidInput(CrmError):
    exit_code = ExitCode.REJECTED

    def __init__(self, message: str, *, field: str | None = None, value: object = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.value = value


class UsageError(CrmError):
    exit_code = ExitCode.USAGE
