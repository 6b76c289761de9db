"""Helpers of the TUI reliability tests: waiting on the app without timed asserts, reading
what a widget shows as plain text, a stand-in that breaks a file/git backend on demand, and the
fake world of tests/tui (for the terminal tests, where the backends do not matter)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.worker import WorkerCancelled

from console.ports import BackendError

from .conftest import LagProbe

WAITS_FOR_PEOPLE = "release-action"  # a handler waiting for its dialog to be dismissed
LAG_LIMIT = 1.0  # seconds the event loop may stall (the services matrix uses the same bound)
JUNK = re.compile(
    r"Traceback|File \"|line \d+, in |\bat 0x[0-9a-f]+|<\w[\w.]* object|\w+(Error|Exception)\("
    r"|\bNone\b$"
)


def run_queue_wait() -> float:
    """Seconds the calling thread has spent ready to run but waiting for a CPU (Linux
    schedstat; 0 where unknown). The suite shares two cores with other processes: time the
    scheduler gave to them is not time the console made anyone wait."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def thread_queue_waits() -> dict[str, float]:
    """:func:`run_queue_wait` of every thread of this process (the HTTP peers, the worker
    threads, the loop), by thread id."""
    out: dict[str, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


def queued_since(before: dict[str, float]) -> float:
    """The longest any one thread of this process has waited for a CPU since ``before`` (a
    thread started since counts from zero). The longest, not the sum: threads starved side by
    side lost the same wall time once."""
    waits = [w - before.get(tid, 0.0) for tid, w in thread_queue_waits().items()]
    return max([0.0, *waits])


class OwnLagProbe(LagProbe):
    """The lag probe of conftest.py, less the time the loop's thread waited for a CPU: what is
    left is what the console itself stalled (rendering, or a blocking call on the loop)."""

    async def _run(self) -> None:
        last, queued = time.monotonic(), run_queue_wait()
        while True:
            await asyncio.sleep(self.period)
            now, q = time.monotonic(), run_queue_wait()
            self.worst = max(self.worst, now - last - self.period - (q - queued))
            last, queued = now, q


def load_tui_fakes() -> Any:
    """tests/tui/fakes.py under a name of its own (tests/tui's conftest loads it as tui_fakes)."""
    name = "reliability_tui_fakes"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parents[1] / "tui" / "fakes.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Clock:
    """A frozen clock the test moves: ages on screen ("5m ago") are exact."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def plain(renderable: Any, width: int = 200) -> str:
    """A renderable as the plain text a terminal ``width`` columns wide would show."""
    console = Console(width=width, record=True, color_system=None, file=_Null())
    console.print(renderable)
    return console.export_text()


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        return None


def shown(widget: Any) -> str:
    """What a Static (or a Panel's body) draws, as text."""
    from textual.widgets import Static

    from console.tui.widgets.panel import Panel

    if isinstance(widget, Panel):
        widget = widget.query_one(".panel-body", Static)
    width = widget.content_region.width
    return plain(widget.content, width if width > 0 else 200)


def assert_words(text: str, *must: str) -> None:
    """One line a person can read: no traceback, no repr, a few real words; names ``must``."""
    assert text.strip(), "nothing was said"
    assert "\n" not in text.strip(), f"more than one line: {text!r}"
    assert not JUNK.search(text), f"not words: {text!r}"
    assert len(re.findall(r"[A-Za-z]{3,}", text)) >= 3, f"too few words: {text!r}"
    for word in must:
        assert word in text, f"{word!r} not in {text!r}"


def _busy(app: Any) -> bool:
    screen = app.screen
    timers = (getattr(screen, "_select_timer", None), getattr(screen, "_viewport_timer", None))
    running = [w for w in app.workers if not w.is_finished and w.group != WAITS_FOR_PEOPLE]
    return bool(running) or any(t is not None for t in timers)


async def settle(pilot: Any, limit: float = 6.0) -> None:
    """Let workers and debounce timers finish: idle twice in a row (or give up at ``limit``)."""
    calm = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await pilot.pause(0.03)
        for worker in [w for w in pilot.app.workers if w.group != WAITS_FOR_PEOPLE]:
            with contextlib.suppress(WorkerCancelled):
                await asyncio.wait_for(worker.wait(), max(0.01, deadline - time.monotonic()))
        calm = 0 if _busy(pilot.app) else calm + 1
        if calm >= 2:
            break
    await pilot.pause()


async def until(pilot: Any, cond: Callable[[], Any], what: str, within: float = 6.0) -> float:
    """Wait until ``cond()`` holds; returns the seconds it took (fails after ``within``)."""
    started = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"gave up after {within:g}s waiting for {what}")
        await pilot.pause(0.02)


async def tour_model_screen(pilot: Any, app: Any, screens: dict[str, str]) -> None:
    """Screenshots of the model screen's four tabs and the help, into ``screens``: where a
    leak (a secret, a control character) would show on the model screen."""
    for tab in "1234":
        await pilot.press(tab)
        await settle(pilot)
        screens[f"model tab {tab}"] = app.export_screenshot()
    await pilot.press("question_mark")
    await settle(pilot)
    screens["help"] = app.export_screenshot()


class Watch:
    """Notes how long after ``start()`` first holds ``cond()`` first holds, checking every
    10 ms on the app's loop whatever the test is busy with meanwhile (pressing keys): e.g. how
    long after its screen was mounted a panel said why it has no fresh data. Time a thread of
    this process spent waiting for a CPU (other processes' doing) is left out."""

    def __init__(self, cond: Callable[[], Any], start: Callable[[], Any] = lambda: True) -> None:
        self.cond, self.start = cond, start
        self.began: float | None = None
        self._queued: dict[str, float] = {}
        self.seen: float | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _holds(self, cond: Callable[[], Any]) -> bool:
        try:
            return bool(cond())
        except Exception:  # a screen half mounted: look again
            return False

    def _since(self) -> float:
        """Seconds since ``start()`` held, less the longest time one of this process's threads
        waited for a CPU meanwhile (on a quiet machine: about nothing)."""
        assert self.began is not None
        elapsed = time.monotonic() - self.began
        return elapsed - min(elapsed, queued_since(self._queued))

    async def _run(self) -> None:
        while self.seen is None:
            if self.began is None and self._holds(self.start):
                self.began, self._queued = time.monotonic(), thread_queue_waits()
            if self.began is not None and self._holds(self.cond):
                self.seen = self._since()
                return
            await asyncio.sleep(0.01)

    def over(self, limit: float) -> bool:
        """Has ``limit`` passed since ``start()`` held, without ``cond()``?"""
        return self.seen is None and self.began is not None and self._since() > limit

    def stop(self) -> float | None:
        self._task.cancel()
        if self.seen is None and self.began is not None and self._holds(self.cond):
            self.seen = self._since()  # it held before the task looked again
        return self.seen


class Breakable:
    """Stands in front of a real backend: passes every call through, or fails it the way the
    kind's backend documents (``error``), or never answers (``hang``: the caller's timeout
    ends it). File and git faults of these kinds are proven in test_file_faults.py; here the
    point is what the TUI does with the failure (facts of a commit are cached by the real
    backends, so a broken repository would not show on a screen already seen)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.error: BackendError | None = None
        self.hang = False
        self.name = getattr(inner, "name", type(inner).__name__)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        if attr == "aclose" or not inspect.iscoroutinefunction(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.hang:
                await asyncio.Event().wait()
            if self.error is not None:
                raise self.error
            return await value(*args, **kwargs)

        return call

    def heal(self) -> None:
        self.error, self.hang = None, False
