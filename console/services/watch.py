"""services.watch: after a promotion or rollback, watch the new version for the SLO window and
say how it went — "healthy after 10 min", or "breach: p95 1.7 s > 500 ms" as soon as it is one.

Only the watched version's requests since the watch began are judged (a version that served
before the change is not judged on its old figures). The clock and the sleep are parameters, so
a test runs ten minutes in milliseconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from console.domain.models import Frozen
from console.services.health import BREACH, OK, UNKNOWN, HealthService, StageHealth, span_text

EXIT_HEALTHY, EXIT_UNKNOWN, EXIT_BREACH = 0, 1, 4
SLACK = 15.0  # seconds a backend's window may reach past the one asked for (scrape: 10 s tallies)


class WatchState(Frozen):
    """Where a watch is: after ``elapsed`` of ``duration`` seconds, the newest verdict."""

    model: str
    stage: str
    version: str | None
    duration: float
    elapsed: float = 0.0
    health: StageHealth | None = None
    done: bool = False
    outcome: str = ""  # healthy | breach | unknown, once done

    @property
    def message(self) -> str:
        """'healthy after 10 min', 'breach: p95 1.7 s > 500 ms', or how it goes so far."""
        h = self.health
        said = h.summary if h is not None else "no verdict yet"
        if not self.done:
            return f"watching {self.span} of {span_text(self.duration)}: {said}"
        if self.outcome == "healthy":
            verdict = h.verdict if h is not None else OK
            note = "" if verdict == OK else f" ({said})"
            return f"healthy after {span_text(self.elapsed)}{note}"
        if self.outcome == BREACH:
            return said
        return f"unknown after {span_text(self.elapsed)}: {'; '.join(h.reasons) if h else said}"

    @property
    def span(self) -> str:
        return span_text(self.elapsed)

    @property
    def exit_code(self) -> int:
        return {"healthy": EXIT_HEALTHY, BREACH: EXIT_BREACH}.get(self.outcome, EXIT_UNKNOWN)


Sleep = Callable[[float], Awaitable[None]]
Update = Callable[[WatchState], None]


async def watch(
    health: HealthService,
    model: str,
    stage: str,
    version: str | None,
    *,
    duration: float,
    interval: float,
    clock: Callable[[], datetime],
    sleep: Sleep,
    on_update: Update | None = None,
) -> WatchState:
    """Judge ``version`` in ``stage`` every ``interval`` seconds for ``duration`` seconds; stop
    at the first breach. Degraded at the end is healthy (within the SLO), said so."""
    start = clock()
    state = WatchState(model=model, stage=stage, version=version, duration=duration)
    while True:
        elapsed = (clock() - start).total_seconds()
        seconds = max(elapsed, interval, 1.0)  # since the change, not before it
        judged = since_start(
            await health.stage(model, stage, version=version, seconds=seconds),
            seconds + max(interval, SLACK),
        )
        state = state.model_copy(update={"elapsed": elapsed, "health": judged})
        finished = elapsed >= duration or judged.verdict == BREACH
        if finished:
            outcome = (
                BREACH
                if judged.verdict == BREACH
                else UNKNOWN
                if judged.verdict == UNKNOWN
                else "healthy"
            )
            state = state.model_copy(update={"done": True, "outcome": outcome})
        if on_update is not None:
            on_update(state)
        if finished:
            return state
        await sleep(min(interval, max(duration - elapsed, 0.0)) or interval)


def since_start(judged: StageHealth, longest: float) -> StageHealth:
    """``judged``, or "unknown" when its figures reach back further than the watch (a backend's
    first reading counts since its counters began): what came before the change is not
    judged."""
    f = judged.figures
    if f is None or f.seconds is None or f.seconds <= longest:
        return judged
    why = f"the figures reach back {span_text(f.seconds)}, before the watch began; next reading"
    return judged.model_copy(update={"verdict": UNKNOWN, "reasons": (why,)})


def describe(state: WatchState) -> str:
    """One line for a person: '<model> <stage> <version>: <message>'."""
    who = " ".join(x for x in (state.model, state.stage, state.version) if x)
    return f"{who}: {state.message}"


__all__ = ["EXIT_BREACH", "EXIT_HEALTHY", "EXIT_UNKNOWN", "WatchState", "describe", "watch"]
