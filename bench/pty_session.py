"""The TUI as a child on a pseudo-terminal we own: count the bytes it writes per key, and read
its peak RSS from ``wait4`` when it exits.

The terminal is 120x40, ``TERM=xterm-256color`` without ``COLORTERM`` (what an SSH session to a
bastion usually forwards), so Textual writes 256-colour sequences.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

from bench.measure import vm_hwm

KEYS = {"down": b"\x1b[B", "pagedown": b"\x1b[6~", "end": b"\x1b[F", "quit": b"q"}


def _make_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    """One program on a pty: read everything it writes, send it keys, reap it."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        size: tuple[int, int] = (120, 40),
    ) -> None:
        master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        env.pop("COLORTERM", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_make_controlling_tty,  # the child gets the pty as its terminal
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.max_rss = 0  # ru_maxrss from wait4 (includes waited-for children)
        self.vm_hwm = 0  # VmHWM of the process itself, read just before quitting
        self.returncode: int | None = None

    def _read(self, wait: float) -> int:
        """Read what is available within ``wait`` seconds; returns the number of bytes."""
        ready, _, _ = select.select([self.master], [], [], max(wait, 0))
        if not ready:
            return 0
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed the pty
            return -1
        self.output += chunk
        return len(chunk)

    def read_until(self, marker: bytes, timeout: float = 30.0) -> float:
        """Seconds since launch until ``marker`` appears in the output."""
        end = time.perf_counter() + timeout
        while marker not in self.output:
            if time.perf_counter() > end or self._read(end - time.perf_counter()) < 0:
                raise TimeoutError(f"{marker!r} never appeared in the output")
        return time.perf_counter() - self.started

    def drain(self, quiet: float = 0.5, limit: float = 30.0) -> int:
        """Read until nothing arrives for ``quiet`` seconds; returns how many bytes came."""
        end = time.perf_counter() + limit
        got = 0
        while time.perf_counter() < end:
            n = self._read(quiet)
            if n <= 0:
                return got
            got += n
        return got

    def key(self, name: str, quiet: float = 0.5) -> int:
        """Send a key; the bytes written in answer until the output is quiet for ``quiet``."""
        os.write(self.master, KEYS[name])
        return self.drain(quiet)

    def key_bursts(self, name: str, quiet: float = 0.5, gap: float = 0.02) -> tuple[int, int]:
        """Send a key; (bytes of the first burst, i.e. until a ``gap`` without output, and
        bytes until the output is quiet for ``quiet``)."""
        os.write(self.master, KEYS[name])
        first = total = 0
        in_first = True
        end = time.perf_counter() + 30
        while time.perf_counter() < end:
            n = self._read(gap if in_first and total else quiet)
            if n <= 0:
                if in_first and total and n == 0:
                    in_first = False
                    continue
                break
            total += n
            if in_first:
                first += n
        return first, total

    def close(self, timeout: float = 10.0) -> None:
        """Ask the app to quit with ``q``; reap it and keep its peak RSS (ru_maxrss)."""
        if self.returncode is None:
            with contextlib.suppress(OSError, ValueError):
                self.vm_hwm = vm_hwm(self.proc.pid)
            with contextlib.suppress(OSError):
                os.write(self.master, KEYS["quit"])
            end = time.perf_counter() + timeout
            while self.returncode is None:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    self.max_rss = usage.ru_maxrss * 1024
                    self.proc.returncode = self.returncode
                    break
                if time.perf_counter() > end:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    end += timeout
                self._read(0.05)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def __enter__(self) -> PtySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
