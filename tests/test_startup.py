"""`crm --help` and `crm --version` stay fast: they must not import SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GROUPS = ["customer", "purchase", "card", "config", "points", "tier", "survey", "feedback", "report", "care", "churn"]


def _imported_modules(*args: str) -> tuple[str, set[str]]:
    env = {**os.environ, "CRM_LANG": "en"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "crmcli", *args], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, modules


@pytest.mark.parametrize("args", [["--help"], ["--version"], *[[g, "--help"] for g in GROUPS]])
def test_help_and_version_do_not_import_sqlalchemy(args: list[str]) -> None:
    out, modules = _imported_modules(*args)
    assert out.strip()
    assert not any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in modules)
    assert not any(m.startswith("sqlmodel") for m in modules)


def test_every_command_has_help_with_an_example() -> None:
    from typer.main import get_command

    from crmcli.cli.app import app

    root = get_command(app)
    missing = []

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, [*path, name])
        elif "Example:" not in (cmd.help or ""):
            missing.append(" ".join(path))

    walk(root, ["crm"])
    assert missing == []
