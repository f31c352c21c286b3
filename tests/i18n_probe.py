"""Run in a fresh interpreter by tests/test_i18n.py: the interface language is chosen once per process,
before the command modules are imported, so each language needs its own process.

    python tests/i18n_probe.py help            # --help of every command in the tree → JSON on stdout
    python tests/i18n_probe.py run DB ARGS...  # each ARGS is one JSON list; their stdout → JSON
"""

from __future__ import annotations

import json
import sys


def _runner():  # type: ignore[no-untyped-def]
    import typer.testing
    from typer.main import get_command

    from crmcli.cli.app import app

    # Typer rebuilds the whole command tree on every invoke (over a second on a busy machine); build it once.
    built = get_command(app)
    typer.testing._get_command = lambda _app: built  # type: ignore[attr-defined]
    return typer.testing.CliRunner()


def command_paths() -> list[list[str]]:
    from typer.main import get_command

    from crmcli.cli.app import app

    paths: list[list[str]] = []

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        paths.append(path)
        for name, child in (getattr(cmd, "commands", None) or {}).items():
            walk(child, [*path, name])

    walk(get_command(app), [])
    return paths


def helps() -> dict[str, dict[str, object]]:
    from crmcli.cli.app import app

    runner = _runner()
    out: dict[str, dict[str, object]] = {}
    for path in command_paths():
        result = runner.invoke(app, [*path, "--help"], catch_exceptions=False)
        out[" ".join(["crm", *path])] = {"code": result.exit_code, "text": result.stdout}
    return out


def outputs(db: str, commands: list[list[str]]) -> list[dict[str, object]]:
    from crmcli.cli.app import app

    runner = _runner()
    results = []
    for args in commands:
        result = runner.invoke(app, ["--db", db, *args], catch_exceptions=False)
        results.append({"args": args, "code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr})
    return results


if __name__ == "__main__":
    if sys.argv[1] == "help":
        data: object = helps()
    else:
        data = outputs(sys.argv[2], [json.loads(a) for a in sys.argv[3:]])
    sys.stdout.write(json.dumps(data, ensure_ascii=False))
