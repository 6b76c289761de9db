"""The TUI's start, phase by phase: ``python -m bench.startup WORKSPACE``.

Prints milliseconds since this module started for: the CLI and config imported and loaded,
Textual and the app imported, the app mounted, the first frame, the workspace open
(``app.ready``), the model list known, the first frame showing it, every visible row loaded.
Headless (frames are produced but not written), so the absolute times are a bit lower than in
a terminal; the split is what matters.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import asyncio  # noqa: E402 - after T0 on purpose
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def phases(workspace: Path) -> list[tuple[str, float]]:
    """(phase, ms since start) for one start of the TUI on ``workspace``."""
    marks: list[tuple[str, float]] = []

    def mark(name: str) -> None:
        marks.append((name, (time.perf_counter() - T0) * 1e3))

    from console.cli.runtime import State

    mark("console.cli imported")
    config = State(workspace, None, None, False, False).config()
    mark("config loaded (pydantic)")
    from console.tui.app import ConsoleApp

    mark("Textual + console.tui.app imported")
    app = ConsoleApp(config)
    mark("ConsoleApp() built (themes)")
    frames: list[float] = []
    original = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None and hasattr(renderable, "render_segments"):
            renderable.render_segments(app.console)
            frames.append(time.perf_counter())
        original(screen, renderable)

    app._display = display  # type: ignore[method-assign]

    async def auto(pilot: Any) -> None:
        async def until(check: Any) -> None:
            while not check():
                await asyncio.sleep(0.001)

        mark("app mounted (auto pilot starts)")
        await until(lambda: bool(frames))
        marks.append(("first frame", (frames[0] - T0) * 1e3))
        await until(app.ready.is_set)
        mark("workspace open (app.ready)")
        screen: Any = app.screen
        await until(lambda: bool(getattr(screen, "models", None)))
        mark("model list known")
        n = len(frames)
        await until(lambda: len(frames) > n)
        marks.append(("frame with the model names", (frames[n] - T0) * 1e3))

        def rows_loaded() -> bool:
            keys = [str(k) for k in screen.table.visible_keys()]
            return bool(keys) and all(k in screen.rows for k in keys)

        await until(rows_loaded)
        mark("visible rows loaded")
        app.exit(0)

    app.run(headless=True, size=(120, 40), auto_pilot=auto)
    return marks


if __name__ == "__main__":
    for name, ms in phases(Path(sys.argv[1])):
        print(f"{ms:8.0f} ms  {name}")
