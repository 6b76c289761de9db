"""The memory of incidents: which versions were rolled back, when, by whom and why.

Two records say so. The audit log has the reason: an executed rollback (an ``outcome`` with
``details.op == "rollback"``, its reason on the intent; or a ``rollback`` summary event other
tools and the demo write). The registry's stage history only shows a stage moving back to an
older version (the tag message may carry the reason). The audit log's record is preferred; the
registry's fills in for versions the log does not know (rolled back outside the console).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from console.domain import AuditEvent, RegistryEvent, RegistryEventKind
from console.domain.models import Frozen
from console.ports import AuditStore
from console.services.overview import OverviewService, describe_error
from console.services.workspace import P

if TYPE_CHECKING:
    from console.config import ConsoleConfig
    from console.services.workspace import Workspace

T = TypeVar("T")
ROLLBACK = "rollback"
EXECUTED = "executed"
OUTCOME = "outcome"
INTENT = "intent"


class RolledBack(Frozen):
    """``version`` of ``model`` was rolled back from ``stage`` (to ``to_version``)."""

    model: str
    version: str
    stage: str
    at: datetime | None = None
    by: str = ""
    reason: str = ""
    to_version: str | None = None
    source: str = "audit"  # audit | registry

    def doc(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def sentence(self) -> str:
        """'rolled back from production at 2025-03-14 10:02 UTC by erin: <reason>'."""
        when = f" at {self.at:%Y-%m-%d %H:%M} UTC" if self.at else ""
        by = f" by {self.by}" if self.by else ""
        to = f" to {self.to_version}" if self.to_version else ""
        why = f": {self.reason}" if self.reason else " (no reason recorded)"
        return f"rolled back from {self.stage}{to}{when}{by}{why}"


def from_audit(
    events: Iterable[AuditEvent], intents: dict[int, AuditEvent] | None = None
) -> list[RolledBack]:
    """Executed rollbacks in the audit log, oldest first (``intents``: rollback intents seen
    so far, by seq; filled in as they come)."""
    intents = {} if intents is None else intents
    out: list[RolledBack] = []
    for ev in events:
        op = ev.details.get("op")
        if ev.action == INTENT and op == ROLLBACK:
            intents[ev.seq] = ev
        elif ev.action == OUTCOME and op == ROLLBACK and ev.result == EXECUTED and ev.before:
            intent = intents.get(int(ev.details.get("intent_seq", 0) or 0))
            reason = intent.reason if intent is not None else ""
            out.append(_record(ev, reason))
        elif ev.action == ROLLBACK and ev.result == EXECUTED and ev.before:  # a summary event
            out.append(_record(ev, ev.reason))
    return out


def _record(ev: AuditEvent, reason: str) -> RolledBack:
    return RolledBack(
        model=ev.model,
        version=ev.before,
        stage=ev.stage,
        at=ev.at,
        by=ev.actor,
        reason=reason,
        to_version=ev.after or None,
        source="audit",
    )


def from_registry(history: Iterable[RegistryEvent]) -> list[RolledBack]:
    """Stage moves the registry's own record calls rollbacks (the tag message starts with
    "rollback", as the console and the demo write it), oldest first. A move to a lower version
    is not a rollback by itself (release.rollback.rolled_back_from reads it the same way)."""
    out: list[RolledBack] = []
    held: dict[str, str] = {}
    for ev in history:
        if ev.kind is not RegistryEventKind.ASSIGN or not ev.stage or not ev.version:
            continue
        before = held.get(ev.stage)
        said = ev.message.strip()
        if before is not None and before != ev.version and said.lower().startswith(ROLLBACK):
            out.append(
                RolledBack(
                    model=ev.model,
                    version=before,
                    stage=ev.stage,
                    at=ev.at,
                    by=ev.actor,
                    reason=said,
                    to_version=ev.version,
                    source="registry",
                )
            )
        held[ev.stage] = ev.version
    return out


PROMOTE = "promote"
SAME_MOVE = timedelta(minutes=10)  # a registry tag and the audit record of the same move


Promotion = tuple[str, str, datetime, str]  # stage, version, when, request id


def promotions(events: Iterable[AuditEvent]) -> list[Promotion]:
    """Every executed promotion the audit log recorded."""
    out = []
    for ev in events:
        op = ev.details.get("op") if ev.action == OUTCOME else ev.action
        if op == PROMOTE and ev.result == EXECUTED and ev.after:
            out.append((ev.stage, ev.after, ev.at, ev.request_id))
    return out


def recorded_as_promotion(rec: RolledBack, promoted: Sequence[Promotion]) -> bool:
    """Whether the console recorded the registry's move back to an older version as a
    promotion (someone chose the older version on purpose): then it is no rollback. The
    console's tag message names the request; other tools' records are matched by time."""
    for stage, version, at, request_id in promoted:
        if stage != rec.stage or version != rec.to_version:
            continue
        if request_id and f"({request_id})" in rec.reason:
            return True
        if rec.at is not None and abs(at - rec.at) <= SAME_MOVE:
            return True
    return False


def newest_by_version(
    audit: Sequence[RolledBack],
    registry: Sequence[RolledBack],
    promoted: Sequence[Promotion] = (),
) -> dict[str, RolledBack]:
    """The newest rollback of each version: the audit log's, else the registry's (unless the
    audit log recorded that move as a promotion)."""
    out: dict[str, RolledBack] = {}
    for rec in registry:
        if not recorded_as_promotion(rec, promoted):
            out[rec.version] = rec
    from_log: dict[str, RolledBack] = {}
    for rec in audit:
        from_log[rec.version] = rec
    out.update(from_log)
    return out


def applies_to(record: RolledBack, stage: str, stages: Sequence[str]) -> bool:
    """Whether promoting into ``stage`` returns the version where it was rolled back from
    (that stage or a later one)."""
    if record.stage not in stages or stage not in stages:
        return record.stage == stage
    return stages.index(stage) >= stages.index(record.stage)


class IncidentFold:
    """What one model's audit events say about rollbacks and promotions, folded as the log
    grows: a read costs what was appended since the last one (as the release requests' fold)."""

    def __init__(self) -> None:
        self.last: AuditEvent | None = None
        self.rollbacks: list[RolledBack] = []
        self.promoted: list[Promotion] = []
        self._intents: dict[int, AuditEvent] = {}

    def add(self, events: Iterable[AuditEvent]) -> None:
        for ev in events:
            if ev.action == INTENT and ev.details.get("op") == ROLLBACK:
                self._intents[ev.seq] = ev
            self.rollbacks += from_audit([ev], self._intents)
            self.promoted += promotions([ev])
            self.last = ev


class IncidentLog:
    """Per-model folds of one audit store (the ``size`` models read most recently)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._folds: OrderedDict[str, IncidentFold] = OrderedDict()

    async def read(self, store: AuditStore, model: str) -> IncidentFold:
        fold = self._folds.get(model)
        last = fold.last if fold is not None else None
        events = await store.events(model=model, since_seq=last.seq - 1 if last else 0)
        if fold is not None and last is not None:
            if events and events[0].seq == last.seq and events[0].hash == last.hash:
                events = events[1:]
            else:  # not the log that was folded (replaced, restored): from the start
                fold, events = None, await store.events(model=model)
        if fold is None:
            fold = IncidentFold()
        fold.add(events)
        self._folds[model] = fold
        self._folds.move_to_end(model)
        while len(self._folds) > self.size:
            self._folds.popitem(last=False)
        return fold


_LOGS: WeakKeyDictionary[AuditStore, IncidentLog] = WeakKeyDictionary()


def incident_log(store: AuditStore) -> IncidentLog:
    """The fold of ``store``'s events, kept as long as the store lives."""
    try:
        found = _LOGS.get(store)
    except TypeError:  # a store that can not be weakly referenced: no memory
        return IncidentLog()
    if found is None:
        found = _LOGS[store] = IncidentLog()
    return found


async def read_rolled_back(
    ws: Workspace, model: str, timeout: float, config: ConsoleConfig | None = None
) -> tuple[dict[str, RolledBack], str]:
    """(the newest rollback record of each rolled-back version of ``model``, why it is
    incomplete ("" when both records were read, or the audit log was))."""
    audit, registry = ws.audit, ws.registry

    async def one(
        kind: str, port: P | None, make: Callable[[P], Awaitable[T]]
    ) -> tuple[T | tuple[()], str]:
        if port is None:
            return (), f"no {kind} backend is configured"
        try:
            async with asyncio.timeout(timeout):
                return await make(port), ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return (), describe_error(exc, kind, timeout, config)[0]

    (fold, a_err), (history, r_err) = await asyncio.gather(
        one("audit", audit, lambda a: incident_log(a).read(a, model)),
        one("registry", registry, lambda r: r.history(model)),
    )
    fold = fold or IncidentFold()
    records = newest_by_version(fold.rollbacks, from_registry(history), fold.promoted)
    # The audit log is the console's own record: read, it is enough.
    why = a_err and (f"audit: {a_err}" + (f"; registry: {r_err}" if r_err else ""))
    return records, why


class IncidentService:
    """Rollback records per model for screens and reports (the release gates read their own)."""

    def __init__(self, overview: OverviewService) -> None:
        self.overview = overview

    async def rolled_back(self, model: str) -> tuple[dict[str, RolledBack], str]:
        o = self.overview
        return await read_rolled_back(o.ws, model, o.timeout, o.config)
