"""``report -o FILE`` on a shared bastion: never through a symbolic link someone planted, never
over another user's file, never half-written (docs/release.md, "The evidence report")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.release.conftest import Workspace

Run = Callable[..., Any]


def _report(run_cli: Run, ws: Workspace, target: Path) -> Any:
    return run_cli("-w", str(ws.path), "report", "m", "v1.1.0", "-o", str(target))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_a_symbolic_link_is_refused_and_nothing_is_written_through_it(
    workspace: Workspace, run_cli: Run, tmp_path: Path, dangling: bool
) -> None:
    victim = tmp_path / "victim" / "authorized_keys"
    victim.parent.mkdir()
    if not dangling:
        victim.write_text("ssh-ed25519 AAAA... alice\n")
    link = tmp_path / "out" / "evidence.md"
    link.parent.mkdir()
    link.symlink_to(victim)
    result = _report(run_cli, workspace, link)
    assert result.exit_code == 1
    assert f"{link} is a symbolic link; refusing to write through it" in result.stderr
    assert link.is_symlink()
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text() == "ssh-ed25519 AAAA... alice\n"
    assert _leftovers(link.parent) == []


def test_another_users_file_is_not_replaced(
    workspace: Workspace, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "evidence.md"
    theirs.write_text("their notes\n")
    me = os.getuid()
    monkeypatch.setattr("console.services.release.report.os.getuid", lambda: me + 4242)
    result = _report(run_cli, workspace, theirs)
    assert result.exit_code == 1
    assert f"{theirs} belongs to uid {me}, not to you" in result.stderr
    assert theirs.read_text() == "their notes\n"


def test_an_own_file_is_replaced_whole_and_no_temporary_file_is_left(
    workspace: Workspace, run_cli: Run, tmp_path: Path
) -> None:
    mine = tmp_path / "evidence.md"
    mine.write_text("an older report\n" * 1000)
    result = _report(run_cli, workspace, mine)
    assert result.exit_code == 0, result.stderr
    text = mine.read_text()
    assert text.startswith("# Release evidence: m v1.1.0") and "an older report" not in text
    assert not mine.is_symlink() and _leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(
    workspace: Workspace, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (the fsync fails): the previous report is still whole."""
    mine = tmp_path / "evidence.md"
    mine.write_text("the previous report\n")

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("console.services.release.report.os.fsync", full)
    result = _report(run_cli, workspace, mine)
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert mine.read_text() == "the previous report\n" and _leftovers(tmp_path) == []
