"""services.timeline: one model's history, merged from the registry and the console's audit log.

Answers "what was in production when": the registry's own record (git tags with their taggers,
MLflow alias changes) next to the console's audit events, newest first, plus the periods each
version held a stage. The merge and period functions are pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol, TypeVar

from pydantic import Field

from console.domain import AuditEvent, RegistryEvent, RegistryEventKind
from console.domain.models import Frozen
from console.domain.text import clean_line
from console.services.overview import OverviewService, Section
from console.services.workspace import AUDIT, REGISTRY

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Timed(Protocol):
    @property
    def at(self) -> datetime | None: ...


T = TypeVar("T", bound=_Timed)


class TimelineEntry(Frozen):
    """One thing that happened to a model, from either source."""

    at: datetime | None = None
    source: Literal["registry", "audit"]
    actor: str = ""
    action: str = ""
    version: str = ""
    stage: str = ""
    text: str = ""
    ref: str = ""
    result: str = ""


class StagePeriod(Frozen):
    """``version`` held ``stage`` from ``start`` until ``end`` (None: still does)."""

    stage: str
    version: str | None
    start: datetime | None = None
    end: datetime | None = None
    actor: str = ""


class Timeline(Frozen):
    """Merged history of one model, newest first, and the stage periods it implies."""

    model: str
    entries: tuple[TimelineEntry, ...] = ()
    periods: tuple[StagePeriod, ...] = ()
    sections: dict[str, Section] = Field(default_factory=dict)
    fetched_at: datetime | None = None

    def periods_of(self, stage: str) -> list[StagePeriod]:
        """The periods of ``stage``, newest first."""
        return [p for p in self.periods if p.stage == stage]


def _sort_at(at: datetime | None) -> datetime:
    if at is None:
        return _EPOCH
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def from_registry(events: Iterable[RegistryEvent]) -> list[TimelineEntry]:
    """Timeline entries for registry events, worded for people."""
    out = []
    for e in events:
        if e.kind is RegistryEventKind.ASSIGN:
            text = f"{e.stage} → {e.version}"
        elif e.kind is RegistryEventKind.UNASSIGN:
            text = f"{e.stage} unassigned" + (f" (was {e.version})" if e.version else "")
        elif e.kind is RegistryEventKind.REGISTER:
            text = f"registered {e.version}"
        elif e.kind is RegistryEventKind.DEREGISTER:
            text = f"deregistered {e.version}"
        else:
            text = "model deprecated"
        if e.message:
            text += f" — {clean_line(e.message)}"  # one line per entry
        out.append(
            TimelineEntry(
                at=e.at,
                source="registry",
                actor=e.actor,
                action=e.kind.value,
                version=e.version or "",
                stage=e.stage or "",
                text=text,
                ref=e.ref,
            )
        )
    return out


def from_audit(events: Iterable[AuditEvent]) -> list[TimelineEntry]:
    """Timeline entries for the console's audit events."""
    out = []
    for e in events:
        parts = [e.action]
        if e.stage:
            parts.append(e.stage)
        if e.before or e.after:
            parts.append(f"{e.before or '∅'} → {e.after or '∅'}")
        elif e.version:
            parts.append(e.version)
        text = " ".join(parts)
        if e.reason:
            text += f" — {e.reason}"
        out.append(
            TimelineEntry(
                at=e.at,
                source="audit",
                actor=e.actor,
                action=e.action,
                version=e.version or e.after,
                stage=e.stage,
                text=text,
                ref=f"#{e.seq}",
                result=e.result,
            )
        )
    return out


def newest(events: Sequence[T], limit: int) -> list[T]:
    """The ``limit`` newest of ``events`` (oldest first in and out), ranked as
    :func:`merge_entries` ranks them: a 10,000-event history only words what can be shown."""
    if len(events) <= limit:
        return list(events)
    ranked = sorted(range(len(events)), key=lambda i: (_sort_at(events[i].at), i), reverse=True)[
        :limit
    ]
    return [events[i] for i in sorted(ranked)]


def merge_entries(*sources: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """All entries, newest first; entries without a time go last. Stable within a source."""
    merged = [e for src in sources for e in src]
    # Python's sort is stable: reverse the input order first so that, for equal times,
    # later-recorded entries come first.
    merged.reverse()
    merged.sort(key=lambda e: _sort_at(e.at), reverse=True)
    return merged


def stage_periods(events: Sequence[RegistryEvent]) -> list[StagePeriod]:
    """Who held each stage when, from registry events (oldest first in); newest first out."""
    ordered = sorted(
        (e for e in events if e.kind in (RegistryEventKind.ASSIGN, RegistryEventKind.UNASSIGN)),
        key=lambda e: _sort_at(e.at),
    )
    open_periods: dict[str, StagePeriod] = {}
    closed: list[StagePeriod] = []
    for e in ordered:
        stage = e.stage or ""
        current = open_periods.pop(stage, None)
        if current is not None:
            closed.append(current.model_copy(update={"end": e.at}))
        if e.kind is RegistryEventKind.ASSIGN:
            open_periods[stage] = StagePeriod(
                stage=stage, version=e.version, start=e.at, actor=e.actor
            )
    periods = closed + list(open_periods.values())
    periods.sort(key=lambda p: _sort_at(p.start), reverse=True)
    return periods


def holder_at(periods: Iterable[StagePeriod], stage: str, when: datetime) -> str | None:
    """The version that held ``stage`` at ``when``, or None."""
    when = _sort_at(when)
    for p in periods:
        if p.stage != stage or p.start is None or _sort_at(p.start) > when:
            continue
        if p.end is None or _sort_at(p.end) > when:
            return p.version
    return None


class TimelineService:
    """Reads registry history and audit events for one model and merges them."""

    def __init__(self, overview: OverviewService) -> None:
        self.overview = overview

    async def timeline(self, model: str, *, limit: int = 500) -> Timeline:
        """Newest ``limit`` entries of ``model``'s merged history and its stage periods."""
        sections: dict[str, Section] = {}
        call = self.overview._call
        no_history: Sequence[RegistryEvent] = ()
        no_events: Sequence[AuditEvent] = ()
        history, audit = await asyncio.gather(
            call(REGISTRY, ("history", model), lambda r: r.history(model), sections, no_history),
            call(AUDIT, ("events", model), lambda a: a.events(model=model), sections, no_events),
        )
        entries = merge_entries(
            from_registry(newest(history, limit)), from_audit(newest(audit, limit))
        )[:limit]
        return Timeline(
            model=model,
            entries=tuple(entries),
            periods=tuple(stage_periods(list(history))),
            sections=sections,
            fetched_at=self.overview.clock(),
        )
