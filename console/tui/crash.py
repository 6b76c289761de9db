"""What the terminal shows when the TUI itself crashes: the error and where it happened, never
the values of variables (Textual's default traceback prints locals, which can hold a token).

Textual has no public hook for an unhandled exception: ``App._handle_exception`` (private)
calls ``App._fatal_error`` (private), which renders ``rich.traceback.Traceback(show_locals=
True)``. ConsoleApp overrides ``_fatal_error`` with :func:`report_crash`; :func:`check_textual`
fails loudly (and a test calls it) when a Textual upgrade renames either method.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from console.logs import redact

if TYPE_CHECKING:
    from textual.app import App

log = logging.getLogger("console.tui.crash")

HOOK = "_fatal_error"  # the private App method ConsoleApp overrides
FRAMES_SHOWN = 6  # innermost frames printed on the terminal (the log has them all)
MAX_MESSAGE = 500
_CONSOLE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the console package


def check_textual() -> None:
    """Raise RuntimeError when Textual no longer routes unhandled exceptions through the
    method ConsoleApp overrides: its default traceback (with locals) would be printed."""
    from textual.app import App

    handle = getattr(App, "_handle_exception", None)
    names = getattr(getattr(handle, "__code__", None), "co_names", ())
    if not callable(getattr(App, HOOK, None)) or HOOK not in names:
        raise RuntimeError(
            f"textual.app.App._handle_exception no longer calls App.{HOOK}: a crash of the TUI "
            "would print Textual's traceback with local variables; update console/tui/crash.py"
        )


def scrub(text: str) -> str:
    """``text`` on one line with credentials masked (key=value pairs, Authorization headers,
    URL userinfo and query tokens)."""
    text = redact(text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _where(filename: str) -> str:
    """A frame's file, short: relative to the checkout or to site-packages when inside one."""
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    try:
        return str(Path(filename).resolve().relative_to(_CONSOLE_ROOT))
    except (ValueError, OSError):
        return filename


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or while handling, innermost last."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 5:
        seen.append(current)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return list(reversed(seen))


def _said(error: BaseException) -> str:
    message = scrub(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def crash_text(error: BaseException) -> str:
    """The full report for the log file: every frame of every chained exception, file, line
    and code, never a variable's value; credentials in messages masked."""
    lines: list[str] = []
    for link in _chain(error):
        if lines:
            lines.append("which led to:")
        for frame in traceback.extract_tb(link.__traceback__):
            lines.append(f"  {_where(frame.filename)}:{frame.lineno} in {frame.name}")
            if frame.line:
                lines.append(f"    {scrub(frame.line)}")
        lines.append(_said(link))
    return "\n".join(lines)


def crash_report(error: BaseException | None, *, log_path: Path | None = None) -> Text:
    """What the terminal shows: the error (message masked), the innermost frames as
    file:line in function, and the log file that holds the details."""
    text = Text()
    text.append("cd4ml-console stopped on an unexpected error in the console itself.\n", "bold")
    if error is None:
        text.append("The error could not be read.\n")
    else:
        text.append(_said(error) + "\n", "bold red")
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            text.append("where (innermost last):\n")
            for frame in frames[-FRAMES_SHOWN:]:
                text.append(f"  {_where(frame.filename)}:{frame.lineno} in {frame.name}\n")
        causes = _chain(error)[:-1]
        if causes:
            text.append(f"raised while handling {_said(causes[-1])}\n")
    if log_path is not None:
        text.append(f"Details are in the log file {log_path} — attach it when you report this.")
    else:
        text.append("No log file was open; run again with a writable log folder to keep details.")
    return text


def _log_path() -> Path | None:
    """The file the ``console`` logger writes to (None when it writes to none)."""
    for handler in logging.getLogger("console").handlers:
        name = getattr(handler, "baseFilename", None)
        if isinstance(handler, logging.FileHandler) and name:
            return Path(name)
    return None


def _current_error(app: App[Any]) -> BaseException | None:
    """The exception being handled (Textual calls the hook inside its ``except``); a failed
    worker's own error rather than the WorkerFailed wrapper."""
    from textual.worker import WorkerFailed

    error: BaseException | None = sys.exc_info()[1] or getattr(app, "_exception", None)
    if isinstance(error, WorkerFailed):
        error = error.error
    return error


def report_crash(app: App[Any]) -> None:
    """In place of Textual's ``App._fatal_error``: log the details (no locals) and exit the
    app printing :func:`crash_report` instead of a traceback with local variables."""
    error = _current_error(app)
    path = _log_path()
    if error is not None and logging.getLogger("console").hasHandlers():
        log.critical("the console crashed:\n%s", crash_text(error))
    app.bell()
    app.panic(crash_report(error, log_path=path))  # public: renders, then closes the app
