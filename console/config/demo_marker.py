"""Which folder is a demo workspace (built by ``cd4ml-console demo``, console.demo.build).

Here, below the services, because the release service asks it before it writes: a demo
persona acts only in a demo workspace (services.release.journal). console.demo writes the
marker; this module only reads it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

MARKER = ".cd4ml-demo.json"  # the demo build writes it (console.demo.build)
GENERATOR = "cd4ml-console demo"
GIT_TIMEOUT = 60.0


def git_env() -> dict[str, str]:
    """git without the user's or the system's config: the demo's builds and checks must not
    depend on them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C"
    )
    return env


def _marker(path: Path) -> dict[str, object] | None:
    """The demo marker in ``path`` when a demo build wrote it, else None."""
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ours = isinstance(marker, dict) and marker.get("generator") == GENERATOR
    return marker if ours else None


def is_demo_dir(path: Path) -> bool:
    """Whether ``path`` holds a demo built by console.demo.build (its marker file says so)."""
    return _marker(path) is not None


def _root_commits(path: Path) -> list[str]:
    """The first commits of the history at ``path``'s HEAD; none when git can not say."""
    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-list", "--max-parents=0", "HEAD"],
            capture_output=True,
            env=git_env(),
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return done.stdout.decode().split() if done.returncode == 0 else []


def is_demo_workspace(path: Path) -> bool:
    """Whether ``path`` is a demo workspace, not only a folder with a demo marker: the marker
    names the demo history's first commit, and the repository there starts with it. A marker
    copied into a real repository does not make it a demo (demo personas act only here)."""
    marker = _marker(path)
    root = marker.get("root_commit") if marker is not None else None
    if not isinstance(root, str) or len(root) != 40:
        return False
    return root in _root_commits(path)
