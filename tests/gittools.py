"""For tests of the git helpers: a repository with one commit, a `git` that never answers
(first on PATH), and a wait for a process to be gone."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.release.conftest import git_env


def one_commit_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` whose one commit holds ``files`` (name -> text)."""
    env = git_env({"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com",
                   "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@example.com"})  # fmt: skip
    subprocess.run(["git", "init", "-q", str(path)], check=True, env=env)
    for name, text in files.items():
        (path / name).write_text(text)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "x"], check=True, env=env)
    return path


def hanging_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a `git` that writes its pid to the returned file and sleeps first on PATH."""
    shim = tmp_path / "bin" / "git"
    shim.parent.mkdir()
    marker = tmp_path / "started"
    shim.write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 30\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    return marker


async def gone(pid: int, within: float = 2.0) -> bool:
    """Has process ``pid`` ended (within ``within`` seconds)?"""
    for _ in range(int(within / 0.02)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.02)
    return False
