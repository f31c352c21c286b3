"""Imports and exports stream: peak memory (ru_maxrss of the `crm` process) barely grows when the file or
the store grows four times. Default: export of 5,000 vs 20,000 customers, import of 3,000 vs 12,000 customers.
`pytest -m slow`: import of 50,000 vs 200,000 purchases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from robust_support import PY, crm_env, generate_shop, write_customers_csv, write_purchases_csv

# Runs crmcli's entry point and prints the process's peak resident memory (KiB on Linux) on stderr last.
PEAK = r"""
import resource, sys
from crmcli.cli.entry import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
else:
    code = 0
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""
GROWTH_LIMIT_KIB = 8 * 1024  # what 4x the rows may add to the peak


def peak_kib(db: Path, *args: str) -> int:
    r = subprocess.run([PY, "-c", PEAK, "--db", str(db), *args], capture_output=True, text=True, env=crm_env(),
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stderr.strip().splitlines()[-1].split()[1])


def test_export_streams(tmp_path: Path) -> None:
    peaks = []
    for n in (5_000, 20_000):
        db = tmp_path / f"shop{n}.sqlite"
        generate_shop(db, customers=n, purchases=n)
        out = tmp_path / f"customers{n}.csv"
        peaks.append(peak_kib(db, "export", "customers", str(out)))
        assert sum(1 for _ in out.open(encoding="utf-8")) == n + 1
    print(f"export peak RSS: {peaks[0] // 1024} MiB for 5,000 customers, {peaks[1] // 1024} MiB for 20,000")
    assert peaks[1] - peaks[0] < GROWTH_LIMIT_KIB, peaks


def import_peaks(tmp_path: Path, kind: str, sizes: tuple[int, int]) -> list[int]:
    base = tmp_path / "base.sqlite"
    generate_shop(base, customers=500, purchases=0)
    peaks = []
    for n in sizes:
        db = tmp_path / f"shop{n}.sqlite"
        shutil.copy2(base, db)
        csv = tmp_path / f"{kind}{n}.csv"
        if kind == "customers":
            write_customers_csv(csv, n)
        else:
            write_purchases_csv(csv, n, customers=500)
        peaks.append(peak_kib(db, "import", kind, str(csv), "--as-of", "2025-06-30"))
    print(f"import {kind} peak RSS: {peaks[0] // 1024} MiB for {sizes[0]:,} rows, {peaks[1] // 1024} MiB for {sizes[1]:,}")
    return peaks


def test_import_streams(tmp_path: Path) -> None:
    peaks = import_peaks(tmp_path, "customers", (3_000, 12_000))
    assert peaks[1] - peaks[0] < GROWTH_LIMIT_KIB, peaks


@pytest.mark.slow
def test_import_streams_large(tmp_path: Path) -> None:
    peaks = import_peaks(tmp_path, "purchases", (50_000, 200_000))
    assert peaks[1] - peaks[0] < GROWTH_LIMIT_KIB, peaks
