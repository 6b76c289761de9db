"""Fixtures for the TUI tests: fake backends, a frozen clock, and an app factory."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.worker import WorkerCancelled

# Load fakes.py under a name no other test folder uses.
_spec = importlib.util.spec_from_file_location("tui_fakes", Path(__file__).with_name("fakes.py"))
assert _spec is not None and _spec.loader is not None
tui_fakes = importlib.util.module_from_spec(_spec)
sys.modules["tui_fakes"] = tui_fakes
_spec.loader.exec_module(tui_fakes)

from console.tui.app import ConsoleApp  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "CD4ML_NOW", "CD4ML_THEME", "TEXTUAL_ANIMATIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> Any:
    return tui_fakes.MutableClock()


@pytest.fixture
def world() -> Any:
    return tui_fakes.FakeWorld()


@pytest.fixture
def make_app(world: Any, clock: Any) -> Callable[..., ConsoleApp]:
    """Build an app over ``world``'s fakes; refresh timers off unless asked."""

    def make(**kwargs: Any) -> ConsoleApp:
        ws, _ = tui_fakes.make_workspace(world)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("refresh_seconds", 0)
        return ConsoleApp(ws.config, workspace=ws, **kwargs)

    return make


def _busy(app: Any) -> bool:
    screen = app.screen
    timers = (getattr(screen, "_select_timer", None), getattr(screen, "_viewport_timer", None))
    running = [w for w in app.workers if not w.is_finished]
    return bool(running) or any(t is not None for t in timers)


async def _workers_done(app: Any) -> None:
    for worker in list(app.workers):
        with contextlib.suppress(WorkerCancelled):  # superseded by a newer exclusive worker
            await worker.wait()


async def settle(pilot: Any, rounds: int = 3) -> None:
    """Let workers and debounce timers finish: idle twice in a row, or give up after ~5 s."""
    calm = 0
    for _ in range(100):
        await pilot.pause(0.05)
        await _workers_done(pilot.app)
        calm = 0 if _busy(pilot.app) else calm + 1
        if calm >= max(2, rounds - 1):
            break
    await pilot.pause()


@pytest.fixture
def wait() -> Callable[..., Any]:
    return settle
