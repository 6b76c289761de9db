"""services.watch with a clock and a sleep the test drives: ten minutes in milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from console.config import ConsoleConfig
from console.domain import LiveWindow
from console.services.health import HealthService
from console.services.overview import OverviewService
from console.services.watch import EXIT_BREACH, EXIT_HEALTHY, EXIT_UNKNOWN, describe, watch
from console.services.workspace import Workspace

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Script:
    """A metrics backend whose figures follow the (fake) time since T0."""

    name = "script"

    def __init__(self, clock: Clock, at: dict[float, tuple[float, float, float]]) -> None:
        self.clock = clock
        self.at = sorted(at.items())  # from second N on: (p95 ms, errors, requests)
        self.asked: list[tuple[str | None, float]] = []
        self.covered: dict[float, float] = {}  # second -> the span answered instead

    async def window(self, model, stage, *, version=None, seconds=600.0):
        self.asked.append((version, seconds))
        t = (self.clock() - T0).total_seconds()
        p95, errors, requests = next(v for s, v in reversed(self.at) if t >= s)
        return LiveWindow(
            model=model, stage=stage, version=version, seconds=self.covered.get(t, seconds),
            requests=requests,
            errors=errors, latency_p95_ms=p95, observed_at=self.clock(),
        )  # fmt: skip

    async def aclose(self) -> None:
        pass


def health(metrics: Script, clock: Clock) -> HealthService:
    config = ConsoleConfig.model_validate({"slo": {"p95_ms": 500, "error_rate": 0.02}})
    ws = Workspace(config=config, backends={"metrics": metrics})
    return HealthService(OverviewService(ws, clock=clock))


async def test_healthy_after_the_window() -> None:
    clock = Clock()
    metrics = Script(clock, {0: (40.0, 0.0, 3.0), 60: (41.0, 1.0, 300.0)})
    seen = []
    state = await watch(
        health(metrics, clock), "m", "production", "v1.2.1", duration=600, interval=15,
        clock=clock, sleep=clock.sleep, on_update=seen.append,
    )  # fmt: skip
    assert state.done and state.outcome == "healthy" and state.exit_code == EXIT_HEALTHY
    assert state.message == "healthy after 10 min"
    assert describe(state) == "m production v1.2.1: healthy after 10 min"
    assert len(seen) == 41 and seen[0].message.startswith("watching 0 s of 10 min: unknown")
    # only the watched version, and only since the watch began
    assert metrics.asked[0] == ("v1.2.1", 15.0) and metrics.asked[-1] == ("v1.2.1", 600.0)


async def test_a_breach_stops_the_watch_at_once() -> None:
    clock = Clock()
    metrics = Script(clock, {0: (40.0, 0.0, 3.0), 120: (1675.0, 54.0, 300.0)})
    state = await watch(
        health(metrics, clock), "m", "production", "v1.3.0", duration=600, interval=15,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert state.outcome == "breach" and state.exit_code == EXIT_BREACH
    assert state.elapsed == 120
    assert state.message == "breach: p95 1.7 s > 500 ms; errors 18.0% > 2.0%"


async def test_too_little_traffic_ends_unknown() -> None:
    clock = Clock()
    metrics = Script(clock, {0: (40.0, 0.0, 12.0)})
    state = await watch(
        health(metrics, clock), "m", "production", "v1", duration=60, interval=15,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert state.outcome == "unknown" and state.exit_code == EXIT_UNKNOWN
    assert state.message == "unknown after 60 s: only 12 requests in 60 s (< 100)"


async def test_degraded_at_the_end_is_healthy_and_says_so() -> None:
    clock = Clock()
    metrics = Script(clock, {0: (450.0, 0.0, 500.0)})
    state = await watch(
        health(metrics, clock), "m", "production", "v1", duration=30, interval=15,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert state.exit_code == EXIT_HEALTHY
    assert state.message.startswith("healthy after 30 s (degraded: p95 450 ms > 400 ms")


async def test_figures_from_before_the_watch_are_not_judged() -> None:
    """A first reading that counts since the counters began (the scrape backend's) reaches
    back before the change: it says so and waits for the next one."""
    clock = Clock()
    metrics = Script(clock, {0: (1675.0, 500.0, 5000.0)})
    metrics.covered = {0: 7200.0}  # the first answer covers two hours, the rest what was asked
    seen: list[Any] = []
    state = await watch(
        health(metrics, clock), "m", "production", "v1", duration=30, interval=15,
        clock=clock, sleep=clock.sleep, on_update=seen.append,
    )  # fmt: skip
    assert seen[0].health.verdict == "unknown"
    assert seen[0].health.reasons == (
        "the figures reach back 2 h, before the watch began; next reading",
    )
    assert state.outcome == "breach" and state.elapsed == 15
