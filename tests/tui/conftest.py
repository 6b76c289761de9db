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

from console.domain import Actor  # noqa: E402
from console.services.release import ReleaseService  # noqa: E402
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


class Ids:
    """Deterministic request ids: req-0001, req-0002, ..."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"req-{self.n:04d}"


class _NoAnchor:
    """Tests never move the audit anchor ref (it would land in the repo the tests run in)."""

    async def prove(self) -> None:
        return None

    async def advance(self) -> None:
        return None


_no_anchor = _NoAnchor()


def release_service(ws: Any, user: str, clock: Any, ids: Ids, **kw: Any) -> ReleaseService:
    """The real release service over the fakes, acting as ``user``."""
    return ReleaseService(
        ws, identity=lambda: Actor(user=user, ssh_client="192.0.2.7"), clock=clock,
        new_id=ids, anchor=_no_anchor, **kw,
    )  # fmt: skip


@pytest.fixture
def ids() -> Ids:
    return Ids()


@pytest.fixture
def make_app(world: Any, clock: Any, ids: Ids) -> Callable[..., ConsoleApp]:
    """Build an app over ``world``'s fakes (or ``over=`` another world's) acting as ``user``
    (default: ops, a release manager who wrote nothing); refresh timers off unless asked."""

    def make(*, user: str = "ops", over: Any = None, **kwargs: Any) -> ConsoleApp:
        ws, _ = tui_fakes.make_workspace(over or world)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("refresh_seconds", 0)
        read_only = bool(kwargs.get("read_only", False))
        kwargs.setdefault("release", release_service(ws, user, clock, ids, read_only=read_only))
        return tui_fakes.console_app(ws.config, workspace=ws, **kwargs)

    return make


@pytest.fixture
def incident(clock: Any) -> Any:
    """The fakes' incident story (tui_fakes.FakeWorld(incident=True)), observed on ``clock``."""
    world = tui_fakes.FakeWorld(incident=True)
    world.now = clock
    return world


@pytest.fixture
def incident_app(incident: Any, clock: Any, ids: Ids) -> Callable[..., ConsoleApp]:
    """An app over the incident story with SLOs and live gates (fake_config(slo=True))."""

    def make(*, user: str = "ops", **kwargs: Any) -> ConsoleApp:
        ws, _ = tui_fakes.make_workspace(incident, slo=True)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("refresh_seconds", 0)
        kwargs.setdefault("release", release_service(ws, user, clock, ids))
        return tui_fakes.console_app(ws.config, workspace=ws, **kwargs)

    return make


@pytest.fixture
def request_promotion(world: Any, clock: Any, ids: Ids) -> Callable[..., Any]:
    """``await request_promotion(user, model, version, stage)``: a pending request, made
    through the release service as ``user`` (the schema change acknowledged)."""

    async def make(user: str, model: str, version: str, stage: str = "production") -> Any:
        ws, _ = tui_fakes.make_workspace(world)
        svc = release_service(ws, user, clock, ids)
        return await svc.promote(
            model, version, stage, reason="recall up, canary clean", ack_schema_change=True
        )

    return make


WAITS_FOR_PEOPLE = "release-action"  # a handler waiting for its dialog to be dismissed


def _busy(app: Any) -> bool:
    screen = app.screen
    timers = (getattr(screen, "_select_timer", None), getattr(screen, "_viewport_timer", None))
    running = [w for w in app.workers if not w.is_finished and w.group != WAITS_FOR_PEOPLE]
    return bool(running) or any(t is not None for t in timers)


async def _workers_done(app: Any) -> None:
    for worker in [w for w in app.workers if w.group != WAITS_FOR_PEOPLE]:
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


@pytest.fixture
def worse_world(monkeypatch: pytest.MonkeyPatch) -> Any:
    """price-ranker with three key metrics, the third (latency_ms) worse in every newer
    version: at 80 columns its column does not fit (the 3 a.m. test, issue 19)."""
    desc, _metrics = tui_fakes.CATALOG["price-ranker"]
    metrics = {
        "ndcg_at_10": (0.412, 0.003, "higher"),
        "recall_at_5": (0.61, 0.002, "higher"),
        "latency_ms": (41.0, 3.0, "lower"),
    }
    monkeypatch.setitem(tui_fakes.CATALOG, "price-ranker", (desc, metrics))
    return tui_fakes.FakeWorld()
