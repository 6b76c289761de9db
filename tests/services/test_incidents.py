"""services.incidents: which versions were rolled back, from the audit log (with the reason)
and, for what the log does not know, from the registry's stage history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.domain import AuditEvent, RegistryEvent, RegistryEventKind
from console.services.incidents import (
    applies_to,
    from_audit,
    from_registry,
    incident_log,
    newest_by_version,
    promotions,
)

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def event(seq: int, action: str, **kw) -> AuditEvent:
    return AuditEvent(seq=seq, at=T0 + timedelta(minutes=seq), actor="erin", action=action,
                      model="m", stage="production", **kw)  # fmt: skip


def assign(minutes: int, version: str, actor: str = "dev", message: str = "") -> RegistryEvent:
    return RegistryEvent(model="m", kind=RegistryEventKind.ASSIGN, version=version,
                         stage="production", actor=actor, at=T0 + timedelta(minutes=minutes),
                         message=message)  # fmt: skip


def test_an_executed_rollback_in_the_audit_log_with_the_intents_reason() -> None:
    events = [
        event(1, "request", version="v1.2.1", reason="p95 1.7 s", request_id="r1",
              details={"kind": "rollback"}),
        event(2, "intent", version="v1.2.1", before="v1.3.0", after="v1.2.1",
              reason="INC-2041: p95 1.7 s", request_id="r1", details={"op": "rollback"}),
        event(3, "outcome", version="v1.2.1", before="v1.3.0", after="v1.2.1",
              reason="production: v1.3.0 -> v1.2.1", result="executed", request_id="r1",
              details={"op": "rollback", "intent_seq": 2}),
        # a rollback that did not happen, and a promotion: neither counts
        event(4, "outcome", version="v1.1.0", before="v1.2.1", after="v1.1.0", result="failed",
              details={"op": "rollback", "intent_seq": 9}),
        event(5, "outcome", version="v1.4.0", before="v1.2.1", after="v1.4.0",
              result="executed", details={"op": "promote", "intent_seq": 8}),
    ]  # fmt: skip
    [rec] = from_audit(events)
    assert (rec.version, rec.stage, rec.to_version, rec.by) == (
        "v1.3.0",
        "production",
        "v1.2.1",
        "erin",
    )
    assert rec.reason == "INC-2041: p95 1.7 s" and rec.at == T0 + timedelta(minutes=3)
    assert rec.sentence() == (
        "rolled back from production to v1.2.1 at 2025-03-14 09:03 UTC by erin: INC-2041: p95 1.7 s"
    )


def test_a_rollback_summary_event_counts_too() -> None:
    summary = event(1, "rollback", version="v1.2.1", before="v1.3.0", after="v1.2.1",
                    reason="Rollback after INC-2041", result="executed")  # fmt: skip
    [rec] = from_audit([summary])
    assert rec.version == "v1.3.0" and rec.reason == "Rollback after INC-2041"


def test_the_registry_history_shows_moves_it_calls_rollbacks() -> None:
    history = [
        assign(0, "v1.2.1"),
        assign(60, "v1.3.0"),
        assign(120, "v1.2.1", "erin", "Rollback after INC-2041\n"),
        assign(180, "v1.4.0"),
        assign(240, "v1.1.0", "dev", "promote m v1.1.0 to production (req-1) by dev: older"),
    ]
    [rec] = from_registry(history)  # a promotion to a lower version is no rollback
    assert (rec.version, rec.to_version, rec.by, rec.source) == (
        "v1.3.0",
        "v1.2.1",
        "erin",
        "registry",
    )
    assert rec.reason == "Rollback after INC-2041"


def test_the_audit_record_wins_over_the_registrys() -> None:
    registry = from_registry([assign(0, "v1.2.1"), assign(60, "v1.3.0"),
                              assign(120, "v1.2.1", message="rollback: INC-2041"),
                              assign(130, "v1.1.0", message="Rollback: INC-2042")])  # fmt: skip
    audit = from_audit([event(1, "rollback", before="v1.3.0", after="v1.2.1", result="executed",
                              reason="INC-2041")])  # fmt: skip
    records = newest_by_version(audit, registry)
    assert records["v1.3.0"].source == "audit" and records["v1.3.0"].reason == "INC-2041"
    assert records["v1.2.1"].source == "registry"  # only the registry saw that one


def test_the_acknowledgement_applies_to_the_stage_and_later_ones() -> None:
    [rec] = from_audit([event(1, "rollback", before="v1.3.0", after="v1.2.1", result="executed")])
    stages = ["staging", "production"]
    assert applies_to(rec, "production", stages) and not applies_to(rec, "staging", stages)
    staging = rec.model_copy(update={"stage": "staging"})
    assert applies_to(staging, "production", stages)


def test_a_move_back_the_console_recorded_as_a_promotion_is_no_rollback() -> None:
    """Promoting an older version on purpose (e.g. into staging to test it again) moves the
    stage back too; the audit log says it was a promotion."""
    history = [assign(0, "v1.2.1"), assign(60, "v1.3.0"), assign(120, "v1.1.0", message="rollback")]
    promoted = promotions([
        event(1, "outcome", version="v1.1.0", before="v1.3.0", after="v1.1.0", result="executed",
              details={"op": "promote", "intent_seq": 0}).model_copy(
            update={"at": T0 + timedelta(minutes=120, seconds=3)}
        ),
    ])  # fmt: skip
    assert newest_by_version([], from_registry(history), promoted) == {}
    assert "v1.3.0" in newest_by_version([], from_registry(history), [])


class Store:
    """An audit store that counts the events it hands out."""

    def __init__(self, events: list[AuditEvent]) -> None:
        self.log = events
        self.handed = 0

    async def events(self, *, model=None, since_seq=0, limit=None):
        out = [e for e in self.log if e.seq > since_seq and model in (None, e.model)]
        self.handed += len(out)
        return out


async def test_the_log_is_folded_as_it_grows() -> None:
    """Each read costs what was appended since the last one, not the whole log."""
    rollback = event(3, "rollback", before="v1.3.0", after="v1.2.1", result="executed",
                     reason="INC-1").model_copy(update={"hash": "h3"})  # fmt: skip
    store = Store([event(n, "request", hash=f"h{n}") for n in (1, 2)] + [rollback])
    log = incident_log(store)
    assert [r.version for r in (await log.read(store, "m")).rollbacks] == ["v1.3.0"]
    store.log += [event(n, "request", hash=f"h{n}") for n in range(4, 104)]
    before = store.handed
    await log.read(store, "m")
    assert store.handed - before == 101  # the last one folded, then what is new
    store.log = [event(1, "request", hash="other")]  # a restored log: folded from the start
    assert (await log.read(store, "m")).rollbacks == []


def test_the_consoles_own_promotion_is_known_by_its_request_whenever_the_tag_is_dated() -> None:
    """GTO dates a tag after the stage's newest one: many moves a second run ahead of the
    clock, so the tag names the request the audit log knows."""
    history = [
        assign(0, "v1.2.1"),
        assign(60, "v1.3.0"),
        assign(600, "v1.1.0", message="rollback? no: promote m v1.1.0 to staging (req-42)"),
    ]
    outcome = event(1, "outcome", version="v1.1.0", before="v1.3.0", after="v1.1.0",
                    result="executed", request_id="req-42",
                    details={"op": "promote", "intent_seq": 0})  # fmt: skip
    assert newest_by_version([], from_registry(history), promotions([outcome])) == {}
