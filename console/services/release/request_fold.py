"""Promotion requests as a fold of audit events: whatever any session wrote, every session sees.

Events of a request share its ``request_id``. ``request`` opens it; ``approve``/``reject`` are
decisions bound to the version and the evidence hash the approver saw; ``override`` lifts the
change window (admin); ``cancel``/``expire`` close it; ``intent``/``outcome`` pairs record each
mutation (``details.op`` = promote, rollback or deploy) for fail-closed execution.

``RequestLog`` keeps the fold of each model and extends it as the log grows. The log is shared
by every session and process, so each read asks the store again, but only for the events after
the newest one already folded (``events(model=, since_seq=)``, an index range in both stores):
reading the requests costs what was appended since the last read, not the whole log. The newest folded event is read again each time and compared by
hash; a log that is not the one folded (replaced, restored, damaged) is folded from the start.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from console.config import ConsoleConfig
from console.config.model import RolesConfig
from console.domain import Approval, AuditEvent, Decision, PromotionRequest, RequestState
from console.identity import is_same_person, role_of
from console.ports import AuditStore
from console.services.release.facts import call

REQUEST = "request"
APPROVE = "approve"
REJECT = "reject"
CANCEL = "cancel"
EXPIRE = "expire"
OVERRIDE = "override"
INTENT = "intent"
OUTCOME = "outcome"
PROMOTE = "promote"  # a refused promote attempt, or a summary written by other tools
ROLLBACK = "rollback"

EXECUTED = "executed"
FAILED = "failed"
CONFLICT = "conflict"
UNKNOWN = "unknown"
REFUSED = "refused"


@dataclass
class RequestView:
    """A request folded from its events, with what execution needs beyond the domain model."""

    request: PromotionRequest
    evidence_hash: str = ""
    commit: str = ""
    ack_schema_change: bool = False
    override_by: str = ""
    approvals: list[Approval] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    intents: dict[int, AuditEvent] = field(default_factory=dict)  # seq -> intent
    outcomes: dict[int, AuditEvent] = field(default_factory=dict)  # intent seq -> outcome
    closed_by: AuditEvent | None = None

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def state(self) -> RequestState:
        return self.request.state

    @property
    def op(self) -> str:
        return ROLLBACK if self.request.rollback else PROMOTE

    def last_outcome(self, op: str) -> AuditEvent | None:
        """The newest outcome of ``op`` (promote/rollback/deploy) in this request."""
        found = [o for o in self.outcomes.values() if o.details.get("op") == op]
        return max(found, key=lambda e: e.seq) if found else None

    def open_intents(self) -> list[AuditEvent]:
        """Intents with no outcome yet (a crash or a lost outcome write)."""
        return [i for s, i in sorted(self.intents.items()) if s not in self.outcomes]


def _approval(ev: AuditEvent, decision: Decision) -> Approval:
    return Approval(
        request_id=ev.request_id,
        actor=ev.actor,
        decision=decision,
        comment=ev.reason,
        at=ev.at,
        version=ev.version,
        evidence_hash=str(ev.details.get("evidence_hash", "")),
    )


def _open(ev: AuditEvent) -> RequestView:
    d = ev.details
    req = PromotionRequest(
        id=ev.request_id,
        model=ev.model,
        version=ev.version,
        stage=ev.stage,
        from_version=d.get("expected") if "expected" in d else (ev.before or None),
        requested_by=ev.actor,
        reason=ev.reason,
        created_at=ev.at,
        rollback=d.get("kind") == ROLLBACK,
    )
    return RequestView(
        request=req,
        evidence_hash=str(d.get("evidence_hash", "")),
        commit=str(d.get("commit", "")),
        ack_schema_change=bool(d.get("ack_schema_change", False)),
        events=[ev],
    )


def _apply(view: RequestView, ev: AuditEvent) -> None:
    view.events.append(ev)
    state = view.request.state
    terminal = state in (RequestState.REJECTED, RequestState.CANCELLED, RequestState.EXPIRED)
    if ev.action == APPROVE and ev.result != REFUSED and not terminal:
        view.approvals.append(_approval(ev, Decision.APPROVE))
    elif ev.action == REJECT and ev.result != REFUSED and not terminal:
        view.approvals.append(_approval(ev, Decision.REJECT))
        _set(view, RequestState.REJECTED, ev)
    elif ev.action in (CANCEL, EXPIRE) and not terminal and state is not RequestState.EXECUTED:
        _set(view, RequestState.CANCELLED if ev.action == CANCEL else RequestState.EXPIRED, ev)
    elif ev.action == OVERRIDE and ev.result != REFUSED:
        view.override_by = ev.actor
    elif ev.action == INTENT:
        view.intents[ev.seq] = ev
    elif ev.action == OUTCOME:
        key = int(ev.details.get("intent_seq", 0) or 0)
        view.outcomes[key] = ev
        if ev.details.get("op") in (PROMOTE, ROLLBACK):
            if ev.result == EXECUTED:
                _set(view, RequestState.EXECUTED, ev)
            elif ev.result in (FAILED, CONFLICT) and state is not RequestState.EXECUTED:
                _set(view, RequestState.FAILED, ev)


def _set(view: RequestView, state: RequestState, ev: AuditEvent) -> None:
    view.request = view.request.model_copy(update={"state": state})
    view.closed_by = ev


def _copy(view: RequestView) -> RequestView:
    return replace(
        view,
        approvals=list(view.approvals),
        events=list(view.events),
        intents=dict(view.intents),
        outcomes=dict(view.outcomes),
    )


class RequestFold:
    """``fold_requests`` done in steps: events arrive in batches, each batch newer than the
    last (an audit log read from where it was read up to). A view once handed out is never
    changed: an event touching it replaces it in ``views`` with an updated copy."""

    def __init__(self) -> None:
        self.views: dict[str, RequestView] = {}  # by id, in the order they were opened
        self.pending: dict[str, None] = {}  # ids of the PENDING views (expiry aside), in order
        self.orphans: dict[str, list[AuditEvent]] = {}  # events seen before their request
        self.last: AuditEvent | None = None  # the newest event added

    def add(self, events: Iterable[AuditEvent]) -> None:
        """Fold ``events`` (any order among themselves) into the views; those not newer than
        the newest already added are skipped (two overlapping reads of the log)."""
        floor = self.last.seq if self.last is not None else None
        touched: set[str] = set()
        for ev in sorted(events, key=lambda e: e.seq):
            if floor is not None and ev.seq <= floor:
                continue
            if self.last is None or ev.seq >= self.last.seq:
                self.last = ev
            rid = ev.request_id
            if not rid:
                continue
            if ev.action == REQUEST and rid not in self.views:
                view = self.views[rid] = _open(ev)
                self.pending[rid] = None
                touched.add(rid)
                for early in self.orphans.pop(rid, []):
                    _apply(view, early)
            elif rid in self.views:
                if rid not in touched:
                    self.views[rid] = _copy(self.views[rid])
                    touched.add(rid)
                _apply(self.views[rid], ev)
            else:
                self.orphans.setdefault(rid, []).append(ev)
        for rid in touched:
            view = self.views[rid]
            view.request = view.request.model_copy(update={"approvals": tuple(view.approvals)})
            if view.state is not RequestState.PENDING:
                self.pending.pop(rid, None)


def fold_requests(events: Iterable[AuditEvent]) -> dict[str, RequestView]:
    """Every request found in ``events`` (any order), by id, in the order they were opened."""
    fold = RequestFold()
    fold.add(events)
    return fold.views


def is_expired(view: RequestView, now: datetime, request_ttl_hours: float) -> bool:
    """Whether ``view`` is pending and waited longer than the policy allows."""
    return view.request.state is RequestState.PENDING and now - view.request.created_at > (
        timedelta(hours=request_ttl_hours)
    )


def with_expiry(view: RequestView, now: datetime, request_ttl_hours: float) -> RequestView:
    """``view`` marked EXPIRED (in place) when it waited longer than the policy allows."""
    if is_expired(view, now, request_ttl_hours):
        view.request = view.request.model_copy(update={"state": RequestState.EXPIRED})
    return view


def expired_copy(view: RequestView, now: datetime, request_ttl_hours: float) -> RequestView:
    """``view`` itself, or an EXPIRED copy of it when it waited too long (never changed)."""
    if not is_expired(view, now, request_ttl_hours):
        return view
    return with_expiry(replace(view), now, request_ttl_hours)


@dataclass(frozen=True)
class ApprovalCheck:
    """One approval and whether it counts now; ``why`` says why not."""

    approval: Approval
    counts: bool
    role: str
    why: str = ""


def check_approvals(
    view: RequestView,
    *,
    evidence_hash: str,
    now: datetime,
    ttl_hours: float,
    allowed_roles: Sequence[str],
    roles: RolesConfig,
    authors: Sequence[str],
) -> list[ApprovalCheck]:
    """Judge every approval of ``view``: distinct people, not the requester or an author, an
    allowed role (as the config says now), the same version and evidence, not expired."""
    out: list[ApprovalCheck] = []
    seen: set[str] = set()
    req = view.request
    for a in view.approvals:
        if a.decision is not Decision.APPROVE:
            continue
        role = role_of(a.actor, roles)
        why = ""
        if a.actor in seen:
            why = f"{a.actor} already approved"
        elif a.actor == req.requested_by:
            why = f"{a.actor} requested it"
        elif (name := is_same_person(a.actor, authors, roles)) is not None:
            why = f"{a.actor} is an author of {req.version} ({name})"
        elif role not in allowed_roles:
            why = f"{a.actor} is {role}, not one of {', '.join(allowed_roles)}"
        elif a.version != req.version:
            why = f"{a.actor} approved {a.version}, not {req.version}"
        elif a.evidence_hash != evidence_hash:
            why = f"{a.actor} approved different gate evidence ({a.evidence_hash[:12]})"
        elif now - a.at > timedelta(hours=ttl_hours):
            why = f"{a.actor}'s approval expired ({ttl_hours:g} h)"
        seen.add(a.actor)
        out.append(ApprovalCheck(approval=a, counts=not why, role=role, why=why))
    return out


def pending_for(
    views: Iterable[RequestView],
    model: str,
    version: str,
    stage: str,
    *,
    rollback: bool | None = False,
) -> RequestView | None:
    """The newest pending request to move ``stage`` of ``model`` to ``version`` (of either
    kind when ``rollback`` is None)."""
    found = [
        v
        for v in views
        if v.request.model == model
        and v.request.version == version
        and v.request.stage == stage
        and (rollback is None or v.request.rollback == rollback)
        and v.state is RequestState.PENDING
    ]
    return found[-1] if found else None


def request_doc(view: RequestView) -> dict[str, Any]:
    """A request as JSON-ready data."""
    r = view.request
    return {
        "id": r.id,
        "model": r.model,
        "version": r.version,
        "stage": r.stage,
        "from_version": r.from_version,
        "kind": view.op,
        "state": r.state.value,
        "requested_by": r.requested_by,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(),
        "evidence_hash": view.evidence_hash,
        "approvals": [
            {
                "actor": a.actor,
                "decision": a.decision.value,
                "comment": a.comment,
                "at": a.at.isoformat(),
                "version": a.version,
                "evidence_hash": a.evidence_hash,
            }
            for a in r.approvals
        ],
    }


FOLDS_KEPT = 32  # models whose folds stay in memory (a fold holds the model's request events)


class RequestLog:
    """Per-model folds of one audit store, for the ``size`` models read most recently."""

    def __init__(self, size: int = FOLDS_KEPT, *, config: ConsoleConfig | None = None) -> None:
        self.size = size
        self.config = config  # names the audit backend in messages
        self._store: AuditStore | None = None
        self._folds: OrderedDict[str | None, RequestFold] = OrderedDict()

    async def read(
        self, store: AuditStore, model: str | None, timeout: float
    ) -> tuple[dict[str, RequestView], list[str]]:
        """(every request of ``model`` (None: all) by id, oldest first; the ids of those still
        pending, expiry aside) as the log says now; the dict is the caller's to change.
        Raises facts.Unavailable when the store does not answer."""
        if store is not self._store:
            self._store, self._folds = store, OrderedDict()
        fold = self._folds.get(model)
        last = fold.last if fold is not None else None
        events = await self._read(store, model, last.seq - 1 if last else 0, timeout)
        if fold is not None and last is not None:
            if not _continues(events, last):
                fold, events = None, await self._read(store, model, 0, timeout)
            else:
                events = events[1:]
        if fold is None:
            fold = RequestFold()
        fold.add(events)
        self._folds[model] = fold
        self._folds.move_to_end(model)
        while len(self._folds) > self.size:
            self._folds.popitem(last=False)
        return dict(fold.views), list(fold.pending)

    async def _read(
        self, store: AuditStore, model: str | None, since_seq: int, timeout: float
    ) -> Sequence[AuditEvent]:
        events = store.events(model=model, since_seq=since_seq)
        return await call("audit", events, timeout, self.config)


def _continues(events: Sequence[AuditEvent], last: AuditEvent) -> bool:
    """Whether ``events`` (read from just before ``last``) start with ``last`` itself."""
    return bool(events) and events[0].seq == last.seq and events[0].hash == last.hash
