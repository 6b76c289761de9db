"""Running the console as other OS users in a test (the tests run as root, as CI does).

``traversable`` lets other users reach this Python and this checkout for the test's duration
(pyenv lives under /root, which is 0700): it adds o+x to the folders on the way that lack it,
and takes it away again afterwards. ``os_users`` makes a group and users with
groupadd/useradd, and removes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def _ancestors(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        for folder in (path, *path.parents):
            if folder.is_dir() and folder not in out:
                out.append(folder)
    return out


@contextlib.contextmanager
def traversable(extra: Iterable[Path] = ()) -> Iterator[None]:
    """Other users may run ``sys.executable`` and import from this checkout meanwhile."""
    wanted = [Path(os.path.realpath(sys.executable)).parent, Path(sys.prefix), REPO, *extra]
    changed = []
    for folder in _ancestors(wanted):
        mode = stat.S_IMODE(folder.stat().st_mode)
        if not mode & 0o001:
            folder.chmod(mode | 0o001)
            changed.append((folder, mode))
    try:
        yield
    finally:
        for folder, mode in reversed(changed):
            folder.chmod(mode)


def need_root() -> None:
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("needs root with useradd and runuser (CI runs as root)")


@dataclass
class Users:
    """A group and users made for one test session; ``home`` holds their home folders."""

    group: str
    names: dict[str, str]  # role in the test -> OS user name
    home: Path

    def env(self, who: str, **extra: str) -> dict[str, str]:
        """A clean environment for ``who`` (their own HOME, no variable of root's)."""
        name = self.names[who]
        home = self.home / name
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home), "USER": name, "LOGNAME": name, "LC_ALL": "C.UTF-8",
            **extra,
        }  # fmt: skip

    def run(self, who: str, *argv: str, env: dict[str, str] | None = None, **kw: object):
        """``argv`` as ``who`` through ``runuser`` (its umask 022, as a login's would be)."""
        return subprocess.run(
            [RUNUSER, "-u", self.names[who], "--", "sh", "-c", 'umask 022; exec "$@"', "sh",
             *argv],
            env=env or self.env(who), capture_output=True, text=True, timeout=120, **kw,
        )  # fmt: skip


@contextlib.contextmanager
def os_users(*roles: str, in_group: Iterable[str]) -> Iterator[Users]:
    """Users named cd4mlt-ROLE-XXXX (the ``in_group`` ones in a new group), then gone."""
    tag = uuid.uuid4().hex[:4]
    group = f"cd4mlt-{tag}"
    home = Path(tempfile.mkdtemp(prefix="cd4ml-homes-"))
    home.chmod(0o755)
    names = {role: f"cd4mlt-{role}-{tag}" for role in roles}
    made: list[str] = []
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    try:
        for role, name in names.items():
            groups = ["-G", group] if role in set(in_group) else []
            subprocess.run(
                ["useradd", "-m", "-d", str(home / name), "-s", "/bin/sh", *groups, name],
                check=True, capture_output=True,
            )  # fmt: skip
            made.append(name)
        with traversable():
            yield Users(group, names, home)
    finally:
        for name in made:
            subprocess.run(["userdel", "-r", name], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
