"""The overview's first frame from the last start, shown again while Textual loads.

Importing and starting Textual takes 250-400 ms on a small VM before any Textual app can draw.
The overview's first frame (the title bar, the model names the last session listed, "…" where
live data will come) depends only on the workspace, the theme, the terminal and those names.
So once Textual has drawn it, the app keeps it as the terminal output Textual wrote for it
(``FrameSlot.save``), and the next start with the same key writes it to the alternate screen
right after the command line is read, before Textual is imported (``FrameSlot.show``). Textual
then takes over the screen without clearing it (``ConsoleApp`` uses a driver that skips its
switch to the alternate screen, made already) and draws the same frame over it.

- Keys typed meanwhile are not echoed; they wait in the terminal, unchanged (Enter stays Enter),
  until Textual reads them.
- Only text, colours and cursor moves are ever written from the file: a file that is not ours
  (another version, key or size, or any other control sequence) is ignored, never shown.
- When the registry lists other models than the frame shows, the frame is dropped
  (``FrameSlot.forget``) and the next start draws without one, then keeps the new frame.
- ``CD4ML_NO_FRAME_CACHE=1`` turns both keeping and showing off.

No Textual import here: this module runs before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from console import cachefiles

VERSION = 1
OFF_ENV = "CD4ML_NO_FRAME_CACHE"
MAX_BYTES = 2 << 20  # a 400x120 frame in full colour is ~1 MB; anything bigger is not ours
ALT_SCREEN_ON = "\x1b[?1049h"
_ENTER = ALT_SCREEN_ON + "\x1b[?25l\x1b[?7l"  # alternate screen, no cursor, no line wrap
_LEAVE = "\x1b[?7h\x1b[?25h\x1b[?1049l"
# Everything a frame of ours holds: printable text, newlines, colours (SGR), cursor moves.
_SAFE = re.compile(r"(?:[^\x00-\x1f\x7f-\x9f]|\n|\x1b\[[0-9;:]*[mH])*")
# What decides how the terminal is drawn to, besides the size (Rich's and Textual's switches).
_TERMINAL_ENV = ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")


def frame_file(where: str) -> Path:
    """Where the frame of the workspace at ``where`` (its config path or folder) is kept."""
    return cachefiles.cache_file("frames", where, ".ansi")


def safe_frame(frame: str) -> bool:
    """Only text, newlines, colours and cursor moves: nothing that could act on the terminal."""
    return _SAFE.fullmatch(frame) is not None


def _terminal_size() -> tuple[int, int]:
    import shutil  # as Textual's driver measures it

    columns, lines = shutil.get_terminal_size()
    return columns or 80, lines or 25


def _write_all(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    while data:
        data = data[os.write(fd, data) :]


class FrameSlot:
    """One start's frame: what it showed before Textual (``shown``) and where to keep the new.

    ``key`` is everything the frame depends on that is known before Textual starts; ``size``
    the terminal's (columns, lines) at that moment.
    """

    def __init__(self, path: Path, key: dict[str, Any], size: tuple[int, int], fd: int = 2):
        self.path = path
        self.key = key
        self.size = size
        self.fd = fd
        self.shown: str | None = None
        self._tty: list[Any] | None = None  # the terminal's settings before echo was turned off
        self._alt_pending = False  # Textual's switch to the alternate screen is still to skip
        self._lock = threading.Lock()
        self._stale = False

    # -- before Textual --------------------------------------------------------------------

    def read(self) -> str | None:
        """The kept frame for this key and size, or None (missing, foreign or unsafe)."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                return None
            head, _, body = self.path.read_bytes().partition(b"\n")
            doc = json.loads(head)
            if doc.get("version") != VERSION or doc.get("key") != self.key:
                return None
            if tuple(doc.get("size", ())) != self.size:
                return None
            frame = body.decode("utf-8")
        except (OSError, ValueError, AttributeError, TypeError):
            return None
        return frame if frame and safe_frame(frame) else None

    def show(self) -> bool:
        """Write the kept frame to the alternate screen; False when there is none to show."""
        frame = self.read()
        if frame is None:
            return False
        self._quiet_keys()
        try:
            _write_all(self.fd, _ENTER + frame)
        except OSError:
            self.release()
            return False
        self.shown = frame
        self._alt_pending = True
        return True

    def _quiet_keys(self) -> None:
        """Keys typed before Textual reads them are not echoed over the frame, and reach it as
        typed: the line discipline neither turns Enter into Ctrl+J nor acts on Backspace or
        Ctrl+U itself. Ctrl+C still interrupts the start."""
        import termios

        try:
            attrs = termios.tcgetattr(0)
            quiet = list(attrs)
            quiet[0] &= ~termios.ICRNL
            quiet[3] &= ~(termios.ECHO | termios.ICANON)
            quiet[6] = list(attrs[6])
            quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 1, 0
            termios.tcsetattr(0, termios.TCSANOW, quiet)
        except (termios.error, OSError):
            return
        self._tty = attrs

    def _restore_keys(self) -> None:
        if self._tty is not None:
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(0, termios.TCSANOW, self._tty)
            self._tty = None

    # -- Textual takes over ------------------------------------------------------------------

    def hand_over(self) -> None:
        """Textual's driver is about to set the terminal up: it reads the settings to restore
        at exit, so they are the user's again first."""
        self._restore_keys()

    def skip_alt_screen(self, data: str) -> bool:
        """True for Textual's first switch to the alternate screen when the frame is on it
        already: switching again clears the screen on some terminals."""
        if self._alt_pending and data == ALT_SCREEN_ON:
            self._alt_pending = False
            return True
        return False

    def release(self) -> None:
        """After the app (or instead of it, on an error or Ctrl+C before Textual started): the
        terminal as it was."""
        self._restore_keys()
        if self._alt_pending:  # Textual never took the screen over
            self._alt_pending = False
            with contextlib.suppress(OSError):
                _write_all(self.fd, _LEAVE)

    # -- after Textual's first frame -------------------------------------------------------

    def save(self, frame: str, size: tuple[int, int]) -> bool:
        """Keep ``frame`` (what Textual drew first, at ``size``) for the next start; True if
        the file was written. An unchanged frame is not written again; a failure (read-only
        home, full disk) is ignored: the frame only makes the next start look faster."""
        if size != self.size or frame == self.shown or not safe_frame(frame):
            return False
        head = json.dumps(
            {"version": VERSION, "key": self.key, "size": list(size), "saved_at": time.time()},
            separators=(",", ":"),
        )
        data = head.encode("utf-8") + b"\n" + frame.encode("utf-8")
        with self._lock:
            return not self._stale and cachefiles.write_atomic(self.path, data)

    def forget(self) -> None:
        """The frame shows models the registry no longer lists (or not all it lists): drop it,
        and keep none from this session."""
        with self._lock:
            self._stale = True
            with contextlib.suppress(OSError):
                self.path.unlink()


def slot_for(
    where: str, *, theme: str | None, peeked_theme: str | None, read_only: bool
) -> FrameSlot | None:
    """The frame slot of a plain start on the overview, or None where no frame is kept: not a
    terminal (stdin and the stderr Textual draws on), another Textual driver (``textual
    serve``), Windows, or ``CD4ML_NO_FRAME_CACHE`` set."""
    if sys.platform == "win32" or os.environ.get(OFF_ENV) or os.environ.get("TEXTUAL_DRIVER"):
        return None
    try:
        if not (os.isatty(0) and os.isatty(2)):
            return None
    except (OSError, ValueError):
        return None
    from console import __version__

    env = {
        name: value
        for name, value in os.environ.items()
        if name in _TERMINAL_ENV or name.startswith("TEXTUAL")
    }
    key = {
        "where": where,
        "console": __version__,
        "theme": theme,
        "peeked_theme": peeked_theme,
        "read_only": read_only,
        "env": dict(sorted(env.items())),
    }
    return FrameSlot(frame_file(where), key, _terminal_size())
