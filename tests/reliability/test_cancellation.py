"""A caller that gives up (the overview's per-panel timeout cancels the backend call) must
leave the git helpers as it found them: no git process left running, and no half-read answer
in ``git cat-file --batch`` for the next reader to mistake for its own."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from console.git.cmd import CatFile, run_git
from tests.gittools import gone, hanging_git, one_commit_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return one_commit_repo(
        tmp_path / "repo", {name: name.upper() * 3 for name in ("a.txt", "b.txt")}
    )


@pytest.mark.parametrize("ticks", [0, 1, 2, 3, 5, 8])
async def test_a_cancelled_cat_file_read_does_not_answer_the_next_one(
    repo: Path, ticks: int
) -> None:
    cat = CatFile(repo)
    try:
        assert await cat.read("HEAD", "a.txt") == b"A.TXTA.TXTA.TXT"
        task = asyncio.create_task(cat.read("HEAD", "a.txt"))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        try:
            got = await task
        except asyncio.CancelledError:
            got = None
        assert got in (None, b"A.TXTA.TXTA.TXT")
        assert await cat.read("HEAD", "b.txt") == b"B.TXTB.TXTB.TXT"
        assert await cat.read("HEAD", "a.txt") == b"A.TXTA.TXTA.TXT"
    finally:
        await cat.aclose()


async def test_a_cancelled_git_command_leaves_no_process(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = hanging_git(tmp_path, monkeypatch)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run_git(repo, "status", timeout=10), 0.5)
    pid = int(marker.read_text())
    assert await gone(pid), f"git (pid {pid}) still runs after its caller gave up"


def test_a_git_call_given_up_leaves_nothing_on_the_terminal_after_the_loop(
    repo: Path, tmp_path: Path
) -> None:
    """Left to garbage collection after ``asyncio.run`` ended, the killed git's transport used
    to print 'Exception ignored ... Event loop is closed' under the command's output."""
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\nsleep 30\n")  # a child of git keeps the pipes open
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    code = (
        "import asyncio, gc, sys\n"
        "from pathlib import Path\n"
        "from console.git.cmd import reap_killed, run_git\n"
        "async def main():\n"
        "    try:\n"
        f"        await asyncio.wait_for(run_git(Path({str(repo)!r}), 'status'), 0.3)\n"
        "    except TimeoutError:\n"
        "        print('gave up')\n"
        "    await reap_killed()  # what Workspace.aclose does\n"
        "asyncio.run(main())\n"
        "gc.collect()\n"
    )
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert out.stdout == "gave up\n"
    assert out.stderr == ""
