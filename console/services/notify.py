"""Notifications (docs/team.md): what is said, when, and what a failure leaves behind.

A notification is sent only after its audit event is durably written, runs beside the action
(the Journal fires it), and is waited for at most ``timeout`` seconds once the action is done;
it never blocks nor undoes the action. A failure is a warning in the action's result and an
audit ``note`` event. Expiry: a request expires when read (``ReleaseService.folded``); the next
release-capable command on its model records an ``expire`` event, notified once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from console.domain import AuditEvent, RequestState
from console.ports import Notifier

if TYPE_CHECKING:
    from console.config.model import PolicyConfig
    from console.services.release.journal import Journal
    from console.services.release.request_fold import RequestView

log = logging.getLogger(__name__)
_T = TypeVar("_T")
NOTE = "note"
ARROW = "→"


def kind_of(event: AuditEvent) -> str:
    """The notification an audit event gives ("" for none): request, approve, reject,
    execute, rollback, conflict, expiry."""
    from console.services.release import request_fold as rq  # the release package imports this one

    op = str(event.details.get("op", ""))
    if event.result == rq.REFUSED:
        return ""
    if event.action in (rq.REQUEST, rq.APPROVE, rq.REJECT):
        return event.action
    if event.action == rq.EXPIRE:
        return "expiry"
    if event.result == rq.CONFLICT and event.action in (rq.OUTCOME, rq.PROMOTE, rq.ROLLBACK):
        return "conflict"
    if (
        event.action == rq.OUTCOME
        and event.result == rq.EXECUTED
        and op in (rq.PROMOTE, rq.ROLLBACK)
    ):
        return "execute" if op == rq.PROMOTE else "rollback"
    return ""


def _line(text: str, limit: int = 300) -> str:
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def headline(kind: str, event: AuditEvent) -> str:
    """The one-line ``text`` a chat shows as is."""
    from console.services.release import request_fold as rq

    e = event
    move = f"{e.model} {e.version} {ARROW} {e.stage}"
    rid = f" ({e.request_id})" if e.request_id else ""
    what = {
        "request": f"{e.actor} requests {move}{rid}, waiting for approval",
        "approve": f"{e.actor} approved {move}{rid}",
        "reject": f"{e.actor} rejected {move}{rid}",
        "execute": f"{e.stage} of {e.model}: {e.before or 'nothing'} {ARROW} {e.after} "
        f"(promoted by {e.actor}){rid}",
        "rollback": f"{e.stage} of {e.model} rolled back: {e.before or 'nothing'} {ARROW} "
        f"{e.after} (by {e.actor}){rid}",
        "conflict": f"conflict: {move} was not executed{rid}",
        "expiry": f"{move}{rid} expired without a decision",
    }[kind]
    if e.details.get("kind") == rq.ROLLBACK and kind == "request":
        what = f"{e.actor} requests a rollback of {move}{rid}, waiting for approval"
    said = kind in ("request", "approve", "reject", "expiry")  # outcomes repeat the move
    reason = f": {e.reason}" if e.reason and said else ""
    return _line(f"[cd4ml] {what}{reason}")


def message(kind: str, event: AuditEvent) -> dict[str, Any]:
    """The JSON body: at least event, model, version, stage, actor, request_id, reason, text."""
    return {
        "event": kind,
        "model": event.model,
        "version": event.version,
        "stage": event.stage,
        "actor": event.actor,
        "request_id": event.request_id,
        "reason": _line(event.reason, 2000),
        "text": headline(kind, event),
        "before": event.before,
        "after": event.after,
        "result": event.result,
        "at": event.at.isoformat(),
        "audit_seq": event.seq,
    }


class Notices:
    """The notifications of one service's actions: fired after each audit write, settled
    (waited for, bounded) when the action is done."""

    def __init__(self, notifier: Notifier | None) -> None:
        self.notifier = notifier
        # The notifier's own bound goes first; this one only backs it up.
        self.timeout = float(getattr(notifier, "timeout", 5.0)) + 1.0
        self._pending: list[tuple[asyncio.Task[str], AuditEvent, str, Journal]] = []

    def fire(self, event: AuditEvent, journal: Journal) -> None:
        """Start the notification of ``event`` (just written), if it gives one."""
        kind = kind_of(event) if self.notifier is not None else ""
        if not kind:
            return
        before = self._pending[-1][0] if self._pending else None
        task = asyncio.ensure_future(self._send(before, message(kind, event)))
        self._pending.append((task, event, kind, journal))

    async def _send(self, before: asyncio.Task[str] | None, body: dict[str, Any]) -> str:
        """One after the other, so a chat shows them in the order they happened."""
        if before is not None:
            await asyncio.wait([before])
        assert self.notifier is not None  # fire() starts nothing without one
        result: str = await self.notifier.notify(body)
        return result

    async def settle(self) -> tuple[str, ...]:
        """Wait for the started notifications (``timeout`` in all); each failure becomes a
        warning and an audit note."""
        pending, self._pending = self._pending, []
        if not pending:
            return ()
        await asyncio.wait([t for t, *_ in pending], timeout=self.timeout)
        warnings = []
        for task, event, kind, journal in pending:
            why = self._failure(task)
            if not why:
                continue
            name = getattr(self.notifier, "name", "notify")
            text = f"the {kind} notification was not delivered: {name}: {why}"
            warnings.append(text)
            log.warning("%s (audit seq %s)", text, event.seq)
            await journal.try_write(
                NOTE,
                model=event.model,
                version=event.version,
                stage=event.stage,
                reason=text,
                result="failed",
                request_id=event.request_id,
                details={"notify": name, "event": kind, "event_seq": event.seq},
            )
        return tuple(warnings)

    def _failure(self, task: asyncio.Task[str]) -> str:
        if not task.done():
            task.cancel()
            return f"no answer within {self.timeout:g}s"
        with contextlib.suppress(asyncio.CancelledError):
            exc = task.exception()
            if exc is None:
                return ""
            return getattr(exc, "message", "") or str(exc) or type(exc).__name__
        return "cancelled"

    async def after(self, action: Awaitable[_T]) -> _T:
        """Run ``action``, then settle its notifications; warnings go into its result."""
        try:
            result = await action
        except BaseException:
            with contextlib.suppress(Exception):
                await self.settle()
            raise
        warnings = await self.settle()
        if warnings and hasattr(result, "warnings") and hasattr(result, "model_copy"):
            merged = (*result.warnings, *warnings)
            return result.model_copy(update={"warnings": merged})
        return result


async def record_expiries(j: Journal, views: Iterable[RequestView], policy: PolicyConfig) -> int:
    """Write an ``expire`` event for each of ``views`` that expired and has none yet, so that
    the expiry is recorded (and notified) once; by the next release-capable command that sees
    it (ReleaseService decides who may write it). Returns how many were written."""
    from console.services.release import request_fold as rq  # the release package imports this one

    expired = [v for v in views if v.state is RequestState.EXPIRED and v.closed_by is None]
    for view in expired:
        r = view.request
        ttl = policy.for_stage(r.stage).request_ttl_hours
        await j.try_write(
            rq.EXPIRE,
            model=r.model,
            version=r.version,
            stage=r.stage,
            request_id=view.id,
            reason=f"no decision within {ttl:g} h (requested by {r.requested_by})",
            result="expired",
            details={"request_ttl_hours": ttl},
        )
    return len(expired)
