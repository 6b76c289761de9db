"""Keystroke to frame, in-process: the real ConsoleApp under Textual's test harness (120x40).

Method: the app's ``_display`` (where Textual turns a compositor update into the escape
sequences it writes to the terminal) is wrapped to record when each frame is produced and to
render it to text as the real driver would (headless mode skips that step; we do it so its cost
is counted). A key is injected with ``driver.send_message(events.Key(...))`` — the call the real
input thread makes after parsing a key — and the time to the next produced frame is taken.
This includes Textual's frame scheduling (the screen's update timer, up to 1/60 s) and the
render, not the terminal's own drawing or the pty write.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETTLE_QUIET = 0.35  # seconds without a frame before the next key (the panels debounce 150 ms)
SETTLE_MAX = 5.0


@dataclass
class KeyFigures:
    """Per key: seconds to the first frame, and to the frame with the new rows' details."""

    first_frame: dict[str, list[float]] = field(default_factory=dict)
    filled: dict[str, list[float]] = field(default_factory=dict)
    frame_bytes: dict[str, list[int]] = field(default_factory=dict)


class FrameClock:
    """Wraps ``app._display``: records (time, bytes) of every frame the app produces."""

    def __init__(self, app: Any) -> None:
        self.frames: list[tuple[float, int, bool]] = []  # (time, bytes, probe() at that frame)
        self.event = asyncio.Event()
        self.probe: Any = lambda: False
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None and hasattr(renderable, "render_segments"):
                text = renderable.render_segments(app.console)
                self.frames.append((time.perf_counter(), len(text.encode()), self.probe()))
                self.event.set()
            original(screen, renderable)

        app._display = display

    async def next_frame(self, after: int, timeout: float = 5.0) -> tuple[float, int, bool]:
        while len(self.frames) <= after:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), timeout)
        return self.frames[after]

    async def first_probed(self, start: int, timeout: float = 30.0) -> float:
        """Time of the first frame from index ``start`` on at which the probe was true."""
        i = start
        while True:
            at, _, ok = await self.next_frame(i, timeout)
            if ok:
                return at
            i += 1

    async def quiet(self, seconds: float = SETTLE_QUIET, limit: float = SETTLE_MAX) -> None:
        """Wait until no frame was produced for ``seconds`` (at most ``limit``)."""
        end = time.perf_counter() + limit
        while time.perf_counter() < end:
            last = self.frames[-1][0] if self.frames else 0.0
            gap = time.perf_counter() - last
            if gap >= seconds:
                return
            await asyncio.sleep(seconds - gap + 0.005)


def rows_filled(screen: Any) -> bool:
    """The model screen knows its versions and has the details of every visible row."""
    if getattr(screen, "view", None) is None:
        return False
    keys = [str(k) for k in screen.table.visible_keys()]
    return bool(keys) and all(k in screen.details for k in keys)


def settled(app: Any) -> bool:
    """No worker running and no debounce timer pending on the current screen."""
    screen = app.screen
    timers = (getattr(screen, name, None) for name in ("_select_timer", "_viewport_timer"))
    return all(w.is_finished for w in app.workers) and all(t is None for t in timers)


async def _until(check: Any, timeout: float, what: str) -> None:
    end = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def measure_keys(
    workspace: Path,
    model: str,
    keys: Sequence[str] = ("down", "pagedown"),
    presses: int = 20,
    timeout: float = 60.0,
) -> KeyFigures:
    """Open ``model``'s screen, wait until loaded, then press each key ``presses`` times."""
    from textual import events

    from console.config import load_config
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.model import ModelScreen

    config = load_config(None, workspace)
    app = ConsoleApp(config, launch=Launch(model=model))
    clock = FrameClock(app)
    out = KeyFigures()
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(lambda: isinstance(app.screen, ModelScreen), timeout, "the model screen")
        screen: Any = app.screen
        await _until(lambda: rows_filled(screen), timeout, "the versions")
        clock.probe = lambda: rows_filled(screen)
        await clock.quiet()
        for key in keys:
            firsts, fills, sizes = [], [], []
            for _ in range(presses):
                mark = len(clock.frames)
                started = time.perf_counter()
                driver: Any = app._driver
                driver.send_message(events.Key(key, None))
                at, size, _ = await clock.next_frame(mark)
                firsts.append(at - started)
                sizes.append(size)
                fills.append(await clock.first_probed(mark, timeout) - started)
                await clock.quiet()
            out.first_frame[key], out.filled[key], out.frame_bytes[key] = firsts, fills, sizes
        await pilot.press("q")
    return out


def run(workspace: Path, model: str, presses: int) -> KeyFigures:
    return asyncio.run(measure_keys(workspace, model, presses=presses))
