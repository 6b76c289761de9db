"""The request state machine: a fold of audit events, whatever order and session wrote them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.config.model import RolesConfig
from console.domain import AuditEvent, RequestState
from console.services.release import request_fold as rq

T0 = datetime(2026, 11, 17, 10, tzinfo=UTC)
ROLES = RolesConfig(admin=["erin"], release_manager=["dev", "rita"], viewer=["vic"],
                    default="viewer")  # fmt: skip


def ev(seq: int, action: str, actor: str = "dev", *, minutes: int = 0, result: str = "",
       version: str = "v2", rid: str = "req-1", **details) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        seq=seq, at=T0 + timedelta(minutes=minutes), actor=actor, action=action, model="m",
        version=version, stage="production", before="v1", after=version, result=result,
        request_id=rid, details=details,
    )  # fmt: skip


REQ = ev(1, "request", evidence_hash="E", expected="v1", kind="promote")

STATE_CASES = [
    ([REQ], RequestState.PENDING),
    ([REQ, ev(2, "approve", "rita", evidence_hash="E")], RequestState.PENDING),
    ([REQ, ev(2, "reject", "rita")], RequestState.REJECTED),
    ([REQ, ev(2, "reject", "rita", result="refused")], RequestState.PENDING),
    ([REQ, ev(2, "cancel", "dev")], RequestState.CANCELLED),
    ([REQ, ev(2, "expire", "system")], RequestState.EXPIRED),
    ([REQ, ev(2, "intent", op="promote"),
      ev(3, "outcome", result="executed", op="promote", intent_seq=2)], RequestState.EXECUTED),
    ([REQ, ev(2, "intent", op="promote"),
      ev(3, "outcome", result="conflict", op="promote", intent_seq=2)], RequestState.FAILED),
    # a later deploy failure does not undo an executed move
    ([REQ, ev(2, "intent", op="promote"),
      ev(3, "outcome", result="executed", op="promote", intent_seq=2),
      ev(4, "intent", op="deploy"), ev(5, "outcome", result="failed", op="deploy", intent_seq=4)],
     RequestState.EXECUTED),
    # after a rejection, approvals and cancels change nothing
    ([REQ, ev(2, "reject", "rita"), ev(3, "approve", "erin"), ev(4, "cancel")],
     RequestState.REJECTED),
]  # fmt: skip


@pytest.mark.parametrize(("events", "state"), STATE_CASES)
def test_fold_state(events: list[AuditEvent], state: RequestState) -> None:
    views = rq.fold_requests(events)
    assert views["req-1"].state is state


def test_fold_ignores_order_and_unrelated_events() -> None:
    events = [
        ev(3, "approve", "rita", evidence_hash="E"),
        AuditEvent(seq=2, at=T0, actor="x", action="promote", model="m"),  # no request id
        REQ,
        ev(4, "request", rid="req-2", version="v3"),
    ]
    views = rq.fold_requests(events)
    assert list(views) == ["req-1", "req-2"]
    one = views["req-1"]
    assert one.request.from_version == "v1" and one.evidence_hash == "E"
    assert [a.actor for a in one.request.approvals] == ["rita"]
    assert rq.pending_for(views.values(), "m", "v3", "production").id == "req-2"  # type: ignore[union-attr]
    assert rq.pending_for(views.values(), "m", "v9", "production") is None


def test_open_intents_and_last_outcome() -> None:
    views = rq.fold_requests(
        [REQ, ev(2, "intent", op="promote"), ev(3, "outcome", result="executed", op="promote",
                                                 intent_seq=2), ev(4, "intent", op="deploy")]
    )  # fmt: skip
    view = views["req-1"]
    assert [i.seq for i in view.open_intents()] == [4]
    assert view.last_outcome("promote").seq == 3  # type: ignore[union-attr]
    assert view.last_outcome("deploy") is None


def test_request_expires_after_its_ttl() -> None:
    view = rq.fold_requests([REQ])["req-1"]
    rq.with_expiry(view, T0 + timedelta(hours=167), 168)
    assert view.state is RequestState.PENDING
    rq.with_expiry(view, T0 + timedelta(hours=169), 168)
    assert view.state is RequestState.EXPIRED


APPROVAL_CASES = [
    # (approvals, expected per approval: counts / why fragment)
    ([ev(2, "approve", "rita", evidence_hash="E")], [(True, "")]),
    ([ev(2, "approve", "dev", evidence_hash="E")], [(False, "requested it")]),
    ([ev(2, "approve", "alice", evidence_hash="E")], [(False, "author")]),
    ([ev(2, "approve", "vic", evidence_hash="E")], [(False, "is viewer")]),
    ([ev(2, "approve", "rita", evidence_hash="OLD")], [(False, "different gate evidence")]),
    ([ev(2, "approve", "rita", evidence_hash="E", version="v3")], [(False, "approved v3")]),
    ([ev(2, "approve", "rita", evidence_hash="E", minutes=-60 * 25)], [(False, "expired")]),
    ([ev(2, "approve", "rita", evidence_hash="E"), ev(3, "approve", "rita", evidence_hash="E")],
     [(True, ""), (False, "already approved")]),
    ([ev(2, "approve", "rita", evidence_hash="E"), ev(3, "approve", "erin", evidence_hash="E")],
     [(True, ""), (True, "")]),
]  # fmt: skip


@pytest.mark.parametrize(("approvals", "expected"), APPROVAL_CASES)
def test_check_approvals(approvals: list[AuditEvent], expected: list[tuple[bool, str]]) -> None:
    view = rq.fold_requests([REQ, *approvals])["req-1"]
    checks = rq.check_approvals(
        view, evidence_hash="E", now=T0, ttl_hours=24, allowed_roles=["release_manager", "admin"],
        roles=ROLES, authors=("Alice Chen <alice.chen@example.com>",),
    )  # fmt: skip
    assert [c.counts for c in checks] == [counts for counts, _ in expected]
    for c, (counts, why) in zip(checks, expected, strict=True):
        assert why in c.why and (c.why == "") is counts


def test_request_doc_is_json_ready() -> None:
    import json

    doc = rq.request_doc(
        rq.fold_requests([REQ, ev(2, "approve", "rita", evidence_hash="E")])["req-1"]
    )
    assert json.loads(json.dumps(doc))["approvals"][0]["actor"] == "rita"
    assert doc["state"] == "pending" and doc["kind"] == "promote"
