"""The per-stage intent lock, as the records define it (the AuditStore port's contract).

An ``intent`` whose ``details.lock`` is true takes the lock of (model, stage); the ``outcome``
naming it in ``details.intent_seq`` releases it. A store keeps the open locks beside its log
and takes them in the append's own transaction; since the rule reads the records alone, a
store can always rebuild them from its log (``open_locks``).
"""

from __future__ import annotations

from collections.abc import Iterable

from console.domain import AuditEvent

LOCK = "lock"


def takes_lock(event: AuditEvent) -> bool:
    return event.action == "intent" and event.details.get(LOCK) is True


def released_intent(event: AuditEvent) -> int | None:
    """The seq of the intent ``event`` closes, when it is an outcome."""
    if event.action != "outcome":
        return None
    seq = event.details.get("intent_seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def open_locks(events: Iterable[AuditEvent]) -> dict[tuple[str, str], AuditEvent]:
    """The locking intents with no outcome yet, by (model, stage), from the whole log."""
    intents: list[AuditEvent] = []
    closed: set[int] = set()
    for event in events:
        if (seq := released_intent(event)) is not None:
            closed.add(seq)
        elif takes_lock(event):
            intents.append(event)
    held: dict[tuple[str, str], AuditEvent] = {}
    for event in sorted(intents, key=lambda e: e.seq):  # the oldest open one holds it
        if event.seq not in closed:
            held.setdefault((event.model, event.stage), event)
    return held
