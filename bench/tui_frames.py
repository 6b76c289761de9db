"""Frames of the real TUI in a real terminal (tmux): time until a marker string is on screen.

A private tmux server (its own socket, no user config) runs each program in a detached
120x40 session; ``tmux capture-pane -p`` is polled every ~5 ms. One capture is a fork+exec of
the tmux client (about 2-4 ms here), so times have a resolution of roughly ±5 ms.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

POLL = 0.005
WIDTH, HEIGHT = 120, 40


class TmuxError(RuntimeError):
    """tmux is missing or a session did not show what we waited for."""


class Tmux:
    """A private tmux server for the benchmark; ``close()`` kills it (and only it)."""

    _servers = itertools.count(1)

    def __init__(self, env: dict[str, str]) -> None:
        # One socket per server: a killed server may still be exiting when the next starts.
        self.socket = f"cd4ml-bench-{os.getpid()}-{next(Tmux._servers)}"
        self.env = env
        self._n = 0
        # A long-lived idle session keeps the server up, so launches do not pay its start.
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", "idle", "sleep 86400")
        self.path = self._tmux("display-message", "-p", "#{socket_path}").stdout.strip()
        self._tmux("set-option", "-g", "default-terminal", _terminal())
        self._tmux("set-option", "-g", "escape-time", "0")

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise TmuxError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done

    def launch(self, argv: Sequence[str], cwd: Path | None = None) -> str:
        """Start ``argv`` in a new detached 120x40 session; returns the session name."""
        self._n += 1
        name = f"s{self._n}"
        command = "exec " + shlex.join(argv)
        args = ["new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-s", name]
        if cwd is not None:
            args += ["-c", str(cwd)]
        self._tmux(*args, command)
        return name

    def capture(self, name: str, *, escapes: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", name] + (["-e"] if escapes else [])
        return self._tmux(*args, check=False).stdout

    def send(self, name: str, *keys: str) -> None:
        self._tmux("send-keys", "-t", name, *keys)

    def pane_pid(self, name: str) -> int:
        return int(self._tmux("display-message", "-p", "-t", name, "#{pane_pid}").stdout)

    def kill(self, name: str) -> None:
        self._tmux("kill-session", "-t", name, check=False)

    def wait_for(
        self,
        name: str,
        done: Callable[[str], bool],
        *,
        since: float,
        timeout: float = 20.0,
        escapes: bool = False,
    ) -> float:
        """Seconds from ``since`` (a perf_counter time) until ``done(screen text)``."""
        deadline = time.perf_counter() + timeout
        while True:
            screen = self.capture(name, escapes=escapes)
            now = time.perf_counter()
            if done(screen):
                return now - since
            if now > deadline:
                tail = "\n".join(screen.splitlines()[:6])
                raise TmuxError(f"no expected frame after {timeout:.0f}s; screen starts:\n{tail}")
            time.sleep(POLL)

    def close(self) -> None:
        self._tmux("kill-server", check=False)
        if self.path:
            Path(self.path).unlink(missing_ok=True)


def _terminal() -> str:
    for base in ("/usr/share/terminfo", "/lib/terminfo", "/etc/terminfo"):
        if (Path(base) / "t" / "tmux-256color").exists():
            return "tmux-256color"
    return "screen-256color"


def contains(marker: str) -> Callable[[str], bool]:
    return lambda screen: marker in screen


def row_shown(marker: str) -> Callable[[str], bool]:
    """A line starts with ``marker`` (a table row, not a mention in a panel)."""
    return lambda screen: any(
        line.split(maxsplit=1)[:1] == [marker] for line in screen.splitlines()
    )


def row_filled(marker: str, *placeholders: str) -> Callable[[str], bool]:
    """The first line that starts with ``marker`` (a table row: the table is above the detail
    bars and panels that may name it too) has no loading placeholder left (default "…")."""
    waiting = placeholders or ("…",)

    def check(screen: str) -> bool:
        for line in screen.splitlines():
            words = line.split(maxsplit=1)
            if words and words[0] == marker:
                return not any(p in line for p in waiting)
        return False

    return check


def time_launch(
    tmux: Tmux,
    argv: Sequence[str],
    done: Callable[[str], bool],
    *,
    cwd: Path | None = None,
    timeout: float = 20.0,
    then: Callable[[str], None] | None = None,
) -> float:
    """Seconds from starting ``argv`` until ``done(screen)``; ``then(session)`` runs after."""
    started = time.perf_counter()
    name = tmux.launch(argv, cwd=cwd)
    try:
        seconds = tmux.wait_for(name, done, since=started, timeout=timeout)
        if then is not None:
            then(name)
        return seconds
    finally:
        tmux.kill(name)


def time_key(
    tmux: Tmux, name: str, key: str, *, timeout: float = 10.0, escapes: bool = True
) -> float:
    """Seconds from sending ``key`` until the screen (with colours) differs from before."""
    before = tmux.capture(name, escapes=escapes)
    started = time.perf_counter()
    tmux.send(name, key)
    return tmux.wait_for(
        name, lambda s: s != before, since=started, timeout=timeout, escapes=escapes
    )


def settle(tmux: Tmux, name: str, quiet: float = 0.6, timeout: float = 20.0) -> None:
    """Wait until the screen has not changed for ``quiet`` seconds."""
    deadline = time.perf_counter() + timeout
    last, since = tmux.capture(name, escapes=True), time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(0.05)
        now = tmux.capture(name, escapes=True)
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            return
