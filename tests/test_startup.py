"""`crm --help` and `crm --version` stay fast: they must not import SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

def _groups() -> list[str]:
    """Every registered group, read from the source of cli/app.py (importing it here would import the groups
    into this process, which says nothing about the subprocess but costs time)."""
    import ast
    from pathlib import Path

    import crmcli.cli

    tree = ast.parse((Path(crmcli.cli.__file__).parent / "app.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "GROUPS":
            return [elt.elts[0].value for elt in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("cli/app.py has no GROUPS list")


GROUPS = _groups()


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

    seen = []

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        seen.append(" ".join(path))
        if "Example:" not in (cmd.help or ""):  # groups too: `crm tier --help` is the first help people read
            missing.append(" ".join(path))
        for name, child in (getattr(cmd, "commands", None) or {}).items():
            walk(child, [*path, name])

    walk(root, ["crm"])
    assert missing == []
    # the walk really reached the nested commands (a walker that stops at the root would pass vacuously)
    assert {"crm customer add", "crm tier rules set", "crm tier levels add", "crm points rules set"} <= set(seen)
    assert {f"crm {g}" for g in GROUPS} <= set(seen)
