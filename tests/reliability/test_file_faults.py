"""Fault matrix, git- and file-based kinds: code, registry, data, ci (runs folder) and audit,
each under the faults that befall files: a missing repository, an unreadable or corrupt file,
a locked database, and a git binary that hangs (a PATH shim). Each cell calls the backend's
read the way the overview does (with the workspace timeout) and asserts the documented
error, one line naming the file or folder, within timeout + 1 s; then the overview shows the
error in the kind's section while the other sections stay fine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.backends import runs_ci
from console.config import load_config
from console.ports import AuditUnavailable, BackendError, InvalidResponse, Unreachable
from console.services.overview import OverviewService
from console.services.workspace import Workspace, open_workspace
from tests.release.conftest import make_workspace

TIMEOUT = 1.0
# Wall-time bounds: `make test` runs these after the parallel tests, on a quiet machine.
pytestmark = [pytest.mark.quiet, pytest.mark.xdist_group("reliability-files")]


def git_shim(folder: Path) -> Path:
    """A ``git`` that hangs (and is killed by the caller's timeout, leaving nothing behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "git"
    shim.write_text("#!/bin/sh\nexec sleep 30\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def _break_missing_repo(ws: Path) -> str:
    shutil.rmtree(ws / ".git")
    return str(ws)


def _break_corrupt_refs(ws: Path) -> str:
    git = ws / ".git"
    for tag in (git / "refs" / "tags").rglob("*"):
        if tag.is_file():
            tag.unlink()
    (git / "packed-refs").write_bytes(b"this is not a packed-refs file\n\x00\xff\n")
    return "packed-refs"


def _break_runs_folder_is_file(ws: Path) -> str:
    shutil.rmtree(ws / ".ci-runs")
    (ws / ".ci-runs").write_text("not a folder")
    return ".ci-runs"


def _break_runs_corrupt(ws: Path) -> str:
    for record in (ws / ".ci-runs").glob("*.json"):  # rewritten atomically, as documented
        tmp = record.with_name(f".{record.name}.tmp")
        tmp.write_text('{"id": 1, "pipeline": ')
        os.replace(tmp, record)
    return ".ci-runs"


def _break_audit_corrupt(ws: Path) -> str:
    path = ws / ".cd4ml" / "audit.sqlite"
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    path.write_bytes(b"garbage, not SQLite " * 300)
    return "audit.sqlite"


def _break_audit_dir(ws: Path) -> str:
    path = ws / ".cd4ml" / "audit.sqlite"
    for extra in ("", "-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    path.mkdir()
    return "audit.sqlite"


@dataclass(frozen=True)
class FileCell:
    kind: str
    fault: str
    breaks: Callable[[Path], str]  # damages the workspace copy; returns a word the error names
    call: Callable[[Any], Any]
    expect: type[BackendError]
    shim: bool = False  # run with the hanging git first on PATH


def _read(kind: str) -> Callable[[Any], Any]:
    return {
        "code": lambda b: b.commit("HEAD~1"),
        "registry": lambda b: b.stages("m"),
        "data": lambda b: b.metrics("m", "HEAD~1"),
        "ci": lambda b: b.check(),
        "audit": lambda b: b.head(),
    }[kind]


def _nothing(ws: Path) -> str:
    return "git"


def _new_tag(ws: Path) -> str:
    """Move the refs (a new tag by someone else), so the registry must read them again."""
    import subprocess

    from tests.release.conftest import git_env

    env = git_env({"GIT_COMMITTER_NAME": "Bob", "GIT_COMMITTER_EMAIL": "bob@example.com"})
    subprocess.run(["git", "-C", str(ws), "tag", "-a", "m@v9.0.0", "-m", "r", "HEAD"], env=env,
                   check=True)  # fmt: skip
    return "git"


def _locked(ws: Path) -> str:
    return "locked"


CELLS = [
    FileCell("code", "missing_repo", _break_missing_repo, _read("code"), Unreachable),
    FileCell("code", "git_hangs", _nothing, _read("code"), Unreachable, shim=True),
    FileCell("registry", "missing_repo", _break_missing_repo, _read("registry"), Unreachable),
    FileCell("registry", "corrupt_refs", _break_corrupt_refs, _read("registry"), Unreachable),
    FileCell("registry", "git_hangs", _new_tag, _read("registry"), Unreachable, shim=True),
    FileCell("data", "missing_repo", _break_missing_repo, _read("data"), Unreachable),
    FileCell("data", "git_hangs", _nothing, _read("data"), Unreachable, shim=True),
    FileCell("ci", "folder_is_a_file", _break_runs_folder_is_file, _read("ci"), Unreachable),
    FileCell(
        "ci",
        "corrupt_records",
        _break_runs_corrupt,
        lambda b: b.runs_for("a" * 40),
        InvalidResponse,
    ),
    FileCell("audit", "corrupt_file", _break_audit_corrupt, _read("audit"), AuditUnavailable),
    FileCell("audit", "path_is_a_folder", _break_audit_dir, _read("audit"), AuditUnavailable),
    FileCell("audit", "locked", _locked, lambda b: b.append(_event()), AuditUnavailable),
]


def _event() -> Any:
    from datetime import UTC, datetime

    from console.domain import AuditEvent

    return AuditEvent(seq=0, at=datetime.now(UTC), actor="rita", action="note", model="m")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("file-faults") / "ws").path
    from click.testing import CliRunner

    from console.cli.group import cli

    # One release action so that the audit file exists.
    CliRunner().invoke(cli, ["-w", str(ws), "promote", "m", "v1.1.0", "--to", "staging",
                             "--reason", "seed"], catch_exceptions=False)  # fmt: skip
    return ws


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _open(ws: Path) -> Workspace:
    config = load_config(None, ws).model_copy(update={"timeout_seconds": TIMEOUT})
    return open_workspace(config)


@pytest.mark.parametrize("cell", CELLS, ids=[f"{c.kind}-{c.fault}" for c in CELLS])
async def test_cell(
    cell: FileCell, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws_path = _copy(template, tmp_path / "ws")
    workspace = _open(ws_path)
    svc = OverviewService(workspace)
    good = await svc.model_view("m")
    assert good.errors == {}, good.errors
    if cell.kind == "audit":
        await workspace.backends["audit"].head()  # the store is open before it breaks
        await workspace.backends["audit"].aclose()
    word = cell.breaks(ws_path)
    if cell.kind == "ci":  # the runs folder is looked at again after RECHECK_SECONDS
        await asyncio.sleep(runs_ci.RECHECK_SECONDS)
    locker = None
    if cell.fault == "locked":
        locker = sqlite3.connect(ws_path / ".cd4ml" / "audit.sqlite", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
    if cell.shim:
        monkeypatch.setenv("PATH", f"{git_shim(tmp_path / 'shim')}{os.pathsep}{os.environ['PATH']}")
    backend = workspace.backends[cell.kind]
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as err:
            await asyncio.wait_for(cell.call(backend), TIMEOUT * 4)
        elapsed = time.monotonic() - started
        assert isinstance(err.value, cell.expect), f"{type(err.value).__name__}: {err.value}"
        text = str(err.value)
        assert text and "\n" not in text and "Traceback" not in text, text
        assert word in text, text
        bound = TIMEOUT * 2 + 1 if cell.kind == "audit" else TIMEOUT + 1
        assert elapsed <= bound, f"{elapsed:.2f}s: {text}"
        if cell.kind in ("code", "registry", "data", "ci"):
            await _assert_overview(svc, good, cell.kind)
    finally:
        if locker is not None:
            locker.execute("ROLLBACK")
            locker.close()
        await workspace.aclose()
    _assert_no_leftover_git(tmp_path)


async def _assert_overview(svc: OverviewService, good: Any, kind: str) -> None:
    started = time.monotonic()
    bad = await svc.model_view("m")
    assert time.monotonic() - started <= TIMEOUT + 1
    sections = {k: s for k, s in bad.sections.items() if s.error}
    if kind in ("code", "data"):  # facts of a commit are immutable: cached, still right
        assert kind not in sections or sections[kind].stale
        return
    assert kind in sections, bad.sections
    assert sections[kind].stale and sections[kind].fetched_at is not None
    assert "\n" not in sections[kind].error
    assert set(sections) == {kind}, sections


def _assert_no_leftover_git(tmp: Path) -> None:
    """The hanging shim's processes were killed by the timeout (none left behind)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_shim(p, tmp)]
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"leftover shim processes: {[p.name for p in left]}")


def _is_shim(proc: Path, tmp: Path) -> bool:
    try:
        cmd = (proc / "cmdline").read_bytes().split(b"\0")
        env = (proc / "environ").read_bytes()
    except OSError:
        return False
    return cmd[:2] == [b"sleep", b"30"] and str(tmp).encode() in env
