"""Files written for the user: owner-only, and complete or absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmcli.core.files import private_file, write_private_text


def test_a_written_file_is_private_and_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    write_private_text(target, "名字,电话\n")
    assert target.read_text(encoding="utf-8") == "名字,电话\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_failure_midway_keeps_the_old_file_and_leaves_no_part_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with private_file(target) as stream:
            stream.write("half")
            raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_an_unencodable_character_fails_before_the_target_changes(tmp_path: Path) -> None:
    target = tmp_path / "gbk.csv"
    with pytest.raises(UnicodeEncodeError):
        write_private_text(target, "😀", encoding="gbk")
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_is_written_through_not_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_private_text(link, "new")
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "new"
