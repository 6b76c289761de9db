"""Slow backends: every port call sleeps first (50 ms), to see how much the services overlap.

Each backend of a workspace is wrapped in a proxy whose async methods ``await
asyncio.sleep(delay)`` before calling the real one. The figure is the wall time of a use case
divided by the sum of the injected latencies of the calls it made: 1.0 means fully serial;
the lower, the more the calls overlap.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNDELAYED = frozenset({"aclose", "check"})


class SlowBackend:
    """A backend whose every async call (except ``aclose``/``check``) starts with a sleep."""

    def __init__(self, inner: Any, delay: float, calls: list[tuple[str, float]]) -> None:
        self._inner = inner
        self._delay = delay
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in UNDELAYED or not inspect.iscoroutinefunction(attr):
            return attr
        delay, calls = self._delay, self._calls

        async def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, time.perf_counter()))
            await asyncio.sleep(delay)
            return await attr(*args, **kwargs)

        return call


@dataclass
class LatencyRun:
    """Wall seconds of one use case (from its start, and from its first port call) and the
    port calls it made (name, when)."""

    seconds: float
    calls: list[tuple[str, float]] = field(default_factory=list)
    from_first_call: float = 0.0

    def ratio(self, delay: float) -> float:
        return self.seconds / (len(self.calls) * delay) if self.calls else float("nan")


def slow_workspace(workspace: Path, delay: float, calls: list[tuple[str, float]]) -> Any:
    """The workspace at ``workspace`` with every backend behind a SlowBackend."""
    from console.config import load_config
    from console.services.workspace import Workspace, open_workspace

    real = open_workspace(load_config(None, workspace))
    backends = {k: SlowBackend(b, delay, calls) for k, b in real.backends.items()}
    return Workspace(
        config=real.config, backends=backends, problems=real.problems, catalog=real.catalog
    )


async def _model_view(workspace: Path, model: str, delay: float) -> tuple[LatencyRun, LatencyRun]:
    from console.services.overview import OverviewService

    calls: list[tuple[str, float]] = []
    ws = slow_workspace(workspace, delay, calls)
    out = []
    async with ws:
        for _ in range(2):  # cold: backends start (cat-file, indexes); warm: their caches full
            calls.clear()
            service = OverviewService(ws)
            started = time.perf_counter()
            await service.model_view(model)
            ended = time.perf_counter()
            first = calls[0][1] if calls else started
            out.append(LatencyRun(ended - started, list(calls), ended - first))
    return out[0], out[1]


def model_view(workspace: Path, model: str, delay: float = 0.05) -> tuple[LatencyRun, LatencyRun]:
    """OverviewService.model_view (stages, versions, details of staged + 3 newest candidates),
    cold (a fresh workspace) and warm (the same workspace again, a fresh service)."""
    return asyncio.run(_model_view(workspace, model, delay))


async def _screen_fill(workspace: Path, model: str, delay: float, timeout: float) -> LatencyRun:
    from bench.pilot_keys import rows_filled, settled
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.model import ModelScreen

    calls: list[tuple[str, float]] = []
    ws = slow_workspace(workspace, delay, calls)
    app = ConsoleApp(ws.config, workspace=ws, launch=Launch(model=model))
    started = time.perf_counter()
    end = started + timeout
    async with ws, app.run_test(size=(120, 40)) as pilot:

        def loaded() -> bool:
            screen: Any = app.screen
            return isinstance(screen, ModelScreen) and rows_filled(screen) and settled(app)

        await _wait(loaded, end, "the model screen to fill")
        ended = time.perf_counter()
        await pilot.press("q")
    first = calls[0][1] if calls else started
    return LatencyRun(ended - started, list(calls), ended - first)


async def _wait(check: Callable[[], bool], end: float, what: str) -> None:
    while not check():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def screen_fill(
    workspace: Path, model: str, delay: float = 0.05, timeout: float = 60.0
) -> LatencyRun:
    """The TUI's model screen from mount until every panel and the visible rows are filled."""
    return asyncio.run(_screen_fill(workspace, model, delay, timeout))
