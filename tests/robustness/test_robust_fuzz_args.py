"""Hostile command arguments: SQL metacharacters, control characters, NUL, huge and negative numbers,
impossible dates, very long strings. Whatever hypothesis types, a command never shows a traceback, exits
with a documented code (0-5), explains a failure in one `Error: ...` line (Click's own usage errors, exit
2, end in one such line after the usage lines), and a failed command leaves the store exactly as before.

In-process (CliRunner) for speed; NUL can only be tested this way, since no real argv can hold one.
Default: 15 examples per command; `pytest -m slow tests/robustness/test_robust_fuzz_args.py` runs 400.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import snapshot_db
from crm_helpers import cli, fast_cli, template_store  # noqa: F401 (fixtures)
from robust_support import DOCUMENTED_EXIT_CODES

NASTY = [
    "'", '"', "'; DROP TABLE customer; --", "\" OR 1=1 --", "%", "_", "\\", "`", "$(rm -rf ~)", "{0}", "{name}",
    "\x00", "a\x00b", "\x1b[31m", "\r\n", "\n", "\t", "\x7f", "\u202e", "\ufeff", "🙂", "王芳", "=1+2", "@SUM(A1)",
    "-", "--", "-1", "-0", "0", "00", "1e3", "1e308", "NaN", "inf", "-inf", "9" * 40, "-" + "9" * 40,
    "1,234.50", "12.345", "0.001", "99999999999999999999.99", "0x10", "½", "١٢٣",
    "0000-00-00", "2024-02-30", "2023-02-29", "2024-02-29", "9999-12-31", "0001-01-01", "10000-01-01",
    "2024-13-01", "24:61", "2024-03-10 02:30", "13/14/2024", "03/04/2024", "-99999d", "99999y", "tomorrow",
    "x" * 5000, "é" * 300, " ", "",
]
text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40),
                 st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=5))
number = st.one_of(st.sampled_from(NASTY), st.integers(-10**30, 10**30).map(str),
                   st.decimals(allow_nan=True, allow_infinity=True, places=3).map(str))

EXAMPLES = 15


def check(result: Any, db: Path, before: dict[str, Any], args: list[str]) -> None:
    everything = result.stdout + result.stderr
    shown = [a[:60] for a in args]
    assert "Traceback" not in everything, (shown, everything)
    assert result.exception is None or isinstance(result.exception, SystemExit), (shown, repr(result.exception))
    assert result.exit_code in DOCUMENTED_EXIT_CODES, (shown, result.exit_code, everything)
    assert "This is a bug in crmcli" not in everything, (shown, everything)
    if result.exit_code == 0:
        return
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("Error: "), (shown, result.stderr)
    if result.exit_code != 2 or not lines[0].startswith("Usage:"):
        assert len(lines) == 1, (shown, result.stderr)
    assert snapshot_db(db) == before, (shown, "a failed command changed the store")


def fuzz(cli: Any, build: Callable[..., list[str]], *strategies: Any, examples: int = EXAMPLES) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.tuples(*strategies))
    def run(values: tuple[Any, ...]) -> None:
        args = build(*values)
        before = snapshot_db(cli.db)
        result = cli(*args)
        check(result, cli.db, before, args)

    run()


@pytest.fixture
def shop(cli: Any) -> Any:
    cli.ok("customer", "add", "Ann Lee", "--phone", "13800138000", "--code", "C000001")
    cli.ok("purchase", "add", "C000001", "128.50", "--at", "2025-01-05 10:00", "--ref", "R-1")
    cli.ok("points", "rules", "set", "enabled", "yes")
    cli.ok("points", "earn", "C000001", "500", "--reason", "start")
    cli.ok("survey", "create", "NPS 2025", "--kind", "nps")
    return cli


CASES: dict[str, tuple[Callable[..., list[str]], tuple[Any, ...]]] = {
    "customer-add": (lambda name, phone, email, birthday, tag: [
        "customer", "add", name, "--phone", phone, "--email", email, "--birthday", birthday, "--tag", tag],
        (text, text, text, text, text)),
    "customer-add-notes": (lambda name, notes, city, gender: [
        "customer", "add", name, "--notes", notes, "--city", city, "--gender", gender], (text, text, text, text)),
    "customer-edit": (lambda ref, name, birthday, follow: [
        "customer", "edit", ref, "--name", name, "--birthday", birthday, "--follow-up", follow],
        (st.one_of(st.just("C000001"), text), text, text, text)),
    "customer-search": (lambda q: ["customer", "search", q], (text,)),
    "customer-list": (lambda city, since, sort: ["customer", "list", "--city", city, "--created-since", since,
                                                 "--sort", sort], (text, text, text)),
    "purchase-add": (lambda who, amount, at, ref, qty: [
        "purchase", "add", who, amount, "--at", at, "--ref", ref, "--quantity", qty],
        (st.one_of(st.just("C000001"), text), number, text, text, number)),
    "purchase-refund": (lambda pid, amount: ["purchase", "refund", pid, amount], (number, number)),
    "points-earn": (lambda who, n, expires: ["points", "earn", who, n, "--reason", "fuzz", "--expires", expires],
                    (st.one_of(st.just("C000001"), text), number, text)),
    "points-redeem": (lambda n, reason: ["points", "redeem", "C000001", n, "--reason", reason], (number, text)),
    "points-adjust": (lambda n, reason: ["points", "adjust", "C000001", n, "--reason", reason], (number, text)),
    "points-expire": (lambda day: ["points", "expire", "--as-of", day], (text,)),
    "points-rules": (lambda rule, value: ["points", "rules", "set", rule, value],
                     (st.sampled_from(["rate", "expiry", "lock-days", "min-purchase", "rounding", "category.x"]), number)),
    "survey-record": (lambda who, score, comment, at: [
        "survey", "record", "NPS 2025", who, score, "--comment", comment, "--at", at],
        (st.one_of(st.just("C000001"), text), number, text, text)),
    "config-set": (lambda key, value: ["config", "set", key, value],
                   (st.sampled_from(["currency", "timezone", "phone.region", "customer.code_prefix", "ui.language"]),
                    text)),
    "tier-recompute": (lambda day: ["tier", "recompute", "--as-of", day], (text,)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_arguments(case: str, shop: Any) -> None:
    build, strategies = CASES[case]
    fuzz(shop, build, *strategies)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_arguments_long(case: str, shop: Any) -> None:
    build, strategies = CASES[case]
    fuzz(shop, build, *strategies, examples=400)
