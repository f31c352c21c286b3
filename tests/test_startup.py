"""`crm --help` and `crm --version` stay fast: they must not import SQLAlchemy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

def _groups() -> dict[str, str]:
    """Every registered group (name → module), read from the source of cli/app.py (importing it here would
    import the groups into this process, which says nothing about the subprocess but costs time)."""
    import ast
    from pathlib import Path

    import crmcli.cli

    tree = ast.parse((Path(crmcli.cli.__file__).parent / "app.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "GROUPS":
            return {elt.elts[0].value: elt.elts[1].value for elt in node.value.elts}  # type: ignore[attr-defined]
    raise AssertionError("cli/app.py has no GROUPS list")


GROUP_MODULES = _groups()
GROUPS = list(GROUP_MODULES)


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


# ------------------------------------------------------------------ groups are built on first use

def _fresh_root(monkeypatch: pytest.MonkeyPatch) -> tuple[object, list[str]]:
    """A newly built root group that CliRunner will use, and the modules of every command function Typer
    converts to a Click command from now on (each conversion inspects the function's signature)."""
    import typer.main
    import typer.testing

    from crmcli.cli.app import app

    converted: list[str] = []
    original = typer.main.get_command_from_info

    def counting(command_info, **kwargs):  # type: ignore[no-untyped-def]
        converted.append(command_info.callback.__module__)
        return original(command_info, **kwargs)

    monkeypatch.setattr(typer.main, "get_command_from_info", counting)
    root = typer.main.get_command(app)
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: root)
    return root, converted


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from crmcli.cli.app import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_command_builds_only_its_own_group(monkeypatch: pytest.MonkeyPatch, cli) -> None:  # type: ignore[no-untyped-def]
    root, converted = _fresh_root(monkeypatch)
    assert root.commands.built() == ["init", "demo"]  # type: ignore[attr-defined]
    converted.clear()
    result = _invoke("--db", str(cli.db), "tier", "rules", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert '"key": "tier.method"' in result.stdout
    assert root.commands.built() == ["init", "demo", "tier"]  # type: ignore[attr-defined]
    # only the tier module's commands were converted (helper signatures of --headers at most), none of the
    # ~100 commands of the other groups
    assert "crmcli.cli.tier" in converted
    assert set(converted) <= {"crmcli.cli.tier", "crmcli.cli.headers"}
    # the lazily built group got --headers like every command with --format
    tier_list = root.commands["tier"].commands["list"]  # type: ignore[attr-defined, index]
    assert any("--headers" in getattr(p, "opts", ()) for p in tier_list.params)


def test_root_help_lists_every_group_like_typer_without_building_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer._click import Context
    from typer.core import TyperGroup

    root, converted = _fresh_root(monkeypatch)
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in GROUPS:
        assert f"\n  {name} " in result.stdout
    assert root.commands.built() == ["init", "demo"]  # type: ignore[attr-defined]
    assert not any(m.startswith("crmcli.cli.") and m not in ("crmcli.cli.app", "crmcli.cli.headers") for m in converted)

    ctx = Context(root, info_name="crm")  # type: ignore[arg-type]
    lazy, typers = ctx.make_formatter(), ctx.make_formatter()
    root.format_commands(ctx, lazy)  # type: ignore[attr-defined]
    TyperGroup.format_commands(root, ctx, typers)  # type: ignore[arg-type]  # builds every group to list it
    assert root.commands.built() == ["init", "demo", *GROUPS]  # type: ignore[attr-defined]
    assert lazy.getvalue() == typers.getvalue()
    assert lazy.getvalue().count("\n") >= len(GROUPS) + 3


def test_an_unknown_command_is_refused_without_building_any_group(monkeypatch: pytest.MonkeyPatch) -> None:
    root, _converted = _fresh_root(monkeypatch)
    result = _invoke("custmer", "list")
    assert result.exit_code == 2
    assert "No such command 'custmer'. Did you mean 'customer'?" in result.stderr
    assert root.commands.built() == ["init", "demo"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [["tier", "rules"], ["customer", "list", "--limit", "1"]])
def test_a_store_command_imports_only_what_it_uses(cli, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    """In a real process: no other group's module (nor its core), and on a SQLite store no PostgreSQL
    dialect (a dialect option on a model once imported all of it, ~0.15 s of every command)."""
    import pg_support

    out, modules = _loaded_modules("--db", str(cli.db), *args, "--format", "json")
    assert out.startswith("[")
    modules_of_groups = {f"crmcli.cli.{m}" for m in GROUP_MODULES.values()}
    assert modules & modules_of_groups == {f"crmcli.cli.{GROUP_MODULES[args[0]]}"}
    assert not any(m.startswith(("crmcli.core.reports", "crmcli.core.churn", "crmcli.core.surveys", "crmcli.render"))
                   for m in modules)
    if not pg_support.PG_URL:
        assert not any(m.startswith("sqlalchemy.dialects.postgresql") for m in modules)



def _loaded_modules(*args: str) -> tuple[str, set[str]]:
    """stdout of `crm ARGS` and every module loaded by its end (-X importtime misses the modules that
    importlib.import_module loads, as the group modules are)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write('\\n'.join(['MODULES', *sys.modules])))\n"
            "from crmcli.cli.entry import main\n"
            "main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "CRM_LANG": "en"}, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, set(proc.stderr.rpartition("MODULES\n")[2].splitlines())
