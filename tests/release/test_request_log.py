"""Requests folded incrementally: the same answer as folding the whole log, reading only what was
appended since, seeing other writers (processes) at once, and starting over on another log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

from console.audit.chain import seal
from console.domain import AuditEvent, RequestState
from console.services.release import request_fold as rq
from console.services.release.request_fold import RequestLog
from tests.audit.audit_helpers import make_store
from tests.release.fakes import World, actor, commit_of

T0 = datetime(2026, 11, 17, 10, tzinfo=UTC)


def ev(seq: int, action: str, rid: str = "req-1", *, actor: str = "dev", version: str = "v2",
       result: str = "", model: str = "m", **details: Any) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        seq=seq, at=T0 + timedelta(minutes=seq), actor=actor, action=action, model=model,
        version=version, stage="production", before="v1", after=version, result=result,
        request_id=rid, details=details,
    )  # fmt: skip


LOG = [
    ev(1, "request", evidence_hash="E", expected="v1", kind="promote"),
    ev(2, "approve", actor="rita", evidence_hash="E"),
    ev(3, "approve", "req-3", actor="rita", version="v4"),  # before its request
    ev(4, "request", "req-2", version="v3", expected="v1"),
    ev(5, "request", "req-3", version="v4", expected="v1"),
    ev(6, "intent", op="promote"),
    ev(7, "outcome", result="executed", op="promote", intent_seq=6),
    ev(8, "cancel", "req-2", version="v3"),
    ev(9, "reject", "req-3", actor="rita", version="v4"),
    ev(10, "request", "req-4", version="v5", expected="v2"),
    ev(11, "approve", "req-4", actor="rita", version="v5"),
    ev(12, "promote", "", result="refused"),
]


def summary(views: dict[str, rq.RequestView]) -> dict[str, Any]:
    return {
        rid: (rq.request_doc(v), [e.seq for e in v.events], sorted(v.intents),
              sorted(v.outcomes), v.closed_by.seq if v.closed_by else None, v.override_by)
        for rid, v in views.items()
    }  # fmt: skip


def test_folding_in_batches_gives_the_same_requests_as_one_fold() -> None:
    whole = rq.fold_requests(LOG)
    assert {k: v.state for k, v in whole.items()} == {
        "req-1": RequestState.EXECUTED, "req-2": RequestState.CANCELLED,
        "req-3": RequestState.REJECTED, "req-4": RequestState.PENDING,
    }  # fmt: skip
    for i, j in combinations(range(len(LOG) + 1), 2):
        fold = rq.RequestFold()
        for batch in (LOG[:i], LOG[i:j], LOG[j:]):
            fold.add(reversed(batch))  # any order within a batch
        assert summary(fold.views) == summary(whole), (i, j)
        assert list(fold.pending) == ["req-4"]
        assert fold.last is not None and fold.last.seq == 12


def test_a_view_handed_out_never_changes_and_overlaps_are_folded_once() -> None:
    fold = rq.RequestFold()
    fold.add(LOG[:2])
    first = fold.views["req-1"]
    fold.add(LOG[:7])  # overlaps the first batch: seq 1-2 are not folded twice
    assert first.state is RequestState.PENDING and [e.seq for e in first.events] == [1, 2]
    now = fold.views["req-1"]
    assert now.state is RequestState.EXECUTED and [e.seq for e in now.events] == [1, 2, 6, 7]
    assert [a.actor for a in now.request.approvals] == ["rita"]


def test_expired_copy_leaves_the_view_alone() -> None:
    view = rq.fold_requests(LOG[:1])["req-1"]
    late = rq.expired_copy(view, T0 + timedelta(hours=200), 168)
    assert late.state is RequestState.EXPIRED and view.state is RequestState.PENDING
    assert rq.expired_copy(view, T0 + timedelta(hours=1), 168) is view


class Store:
    """An audit store in memory that records what each read asked for."""

    name = "counting-audit"

    def __init__(self) -> None:
        self.rows: list[AuditEvent] = []
        self.asked: list[tuple[str | None, int]] = []

    def extend(self, events: list[AuditEvent]) -> None:
        for e in events:
            prev = self.rows[-1].hash if self.rows else ""
            self.rows.append(seal(e, len(self.rows) + 1, prev)[0])

    async def events(self, *, model: str | None = None, since_seq: int = 0, limit: Any = None):
        self.asked.append((model, since_seq))
        return [e for e in self.rows if e.seq > since_seq and model in (None, e.model)]


async def test_each_read_asks_only_for_what_was_appended_since() -> None:
    store, log = Store(), RequestLog()
    store.extend(LOG[:5])
    views, pending = await log.read(store, "m", 5)
    assert pending == ["req-1", "req-2", "req-3"]
    store.extend(LOG[5:])
    views, pending = await log.read(store, "m", 5)
    assert store.asked == [("m", 0), ("m", 4)]  # from the newest folded event, checked by hash
    assert summary(views) == summary(rq.fold_requests(store.rows))
    assert pending == ["req-4"]
    views.clear()  # the caller's copy
    assert len((await log.read(store, "m", 5))[0]) == 4
    assert store.asked[-1] == ("m", 11)  # seq 12 has no model


async def test_another_log_is_folded_from_the_start() -> None:
    store, log = Store(), RequestLog()
    store.extend(LOG[:7])
    await log.read(store, "m", 5)
    store.rows = []  # a new log (the old one kept as evidence): seq 1.. again
    store.extend([ev(1, "request", "req-9", version="v9")])
    views, pending = await log.read(store, "m", 5)
    assert list(views) == ["req-9"] and pending == ["req-9"]
    store.rows = []  # as long as the old one, different from its newest folded event on
    store.extend([*LOG[:6], ev(7, "outcome", result="conflict", op="promote", intent_seq=6)])
    await log.read(store, "m", 5)  # (folds req-9's log: seq 1 differs, so from the start)
    views, _ = await log.read(store, "m", 5)
    assert views["req-1"].state is RequestState.FAILED
    other = Store()
    other.extend(LOG[:1])
    assert list((await log.read(other, "m", 5))[0]) == ["req-1"]  # another store: its own fold
    assert other.asked == [("m", 0)]


async def test_only_the_newest_models_keep_their_fold() -> None:
    store, log = Store(), RequestLog(size=2)
    store.extend([ev(i + 1, "request", f"req-{i}", model=m) for i, m in enumerate("abc")])
    for m in "abca":
        await log.read(store, m, 5)
    assert store.asked == [("a", 0), ("b", 0), ("c", 0), ("a", 0)]
    await log.read(store, "c", 5)
    assert store.asked[-1] == ("c", 2)


async def test_two_stores_on_one_file_see_each_others_appends(tmp_path: Path) -> None:
    """Two processes share the SQLite log: a kept fold still sees the other's writes."""
    mine, theirs = make_store(tmp_path), make_store(tmp_path)
    try:
        log = RequestLog()
        await mine.append(LOG[0])
        assert (await log.read(mine, "m", 5))[1] == ["req-1"]
        for e in LOG[1:7]:
            await theirs.append(e)
        views, pending = await log.read(mine, "m", 5)
        assert views["req-1"].state is RequestState.EXECUTED and pending == ["req-2", "req-3"]
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_one_service_kept_open_sees_other_sessions_and_expiry_does_not_stick() -> None:
    w = World(approvals=1)
    mine = w.svc("dev")  # one long-lived service (the TUI keeps one)
    await mine.promote("m", "v1.1.0", "production", reason="better auc")
    assert len(await mine.pending("m")) == 1
    await w.svc("rita").approve("m", "v1.1.0", "production")  # another session
    assert [v.state for v in await mine.request_views("m")] == [RequestState.EXECUTED]
    mine.identity = lambda: actor("rita")
    w.data.by_commit[commit_of("v1.3.0")]["auc"] = 0.95
    await mine.promote("m", "v1.3.0", "production", reason="b")
    w.clock.advance(hours=200)
    assert [v.state.value for v in await mine.request_views("m")] == ["executed", "expired"]
    w.clock.advance(hours=-200)
    assert [v.state.value for v in await mine.request_views("m")] == ["executed", "pending"]
