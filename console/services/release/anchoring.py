"""`audit anchor`: what the audit anchor holds, and an admin's explicit, recorded re-anchoring.

Release actions refuse while the log can not be shown to be the anchored one (a missing or
unreadable anchor where the log remembers one, a store that contradicts it). After
investigating, an admin starts a new anchor history at the log's head; the record of that
(`anchor_reset`) names who, why and what the anchor held before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.services.release.context import need_audit
from console.services.release.decisions import need_reason
from console.services.release.journal import Journal
from console.services.release.results import ActionResult, ReleaseError

if TYPE_CHECKING:
    from console.services.release.service import ReleaseService

from console.audit.chain import ANCHOR_RESET as RESET


async def anchor_state(svc: ReleaseService) -> tuple[bool, str]:
    """(proved, what the anchor holds and whether the log is the anchored one, in words)."""
    from console.audit.anchor import describe_anchor

    held = await describe_anchor(svc.config.root, timeout=svc.timeout)
    try:
        anchor = await svc.anchoring().prove()
    except Exception as exc:
        return False, f"anchor {held}; the log can NOT be shown to be the anchored one: {exc}"
    if anchor is None:
        return True, f"anchor {held}; the log has never been anchored"
    return True, f"anchor {held}; the log extends it"


async def reset_anchor(svc: ReleaseService, reason: str) -> ActionResult:
    """Start a new anchor history at the log's head (admins only; the record comes first)."""
    from console.audit.anchor import describe_anchor, replace_anchor

    actor, _ = await svc.admit("re-anchor", "", allowed=("admin",))
    reason = need_reason(reason, "re-anchoring the audit log")
    store = need_audit(svc.ws)
    held = await describe_anchor(svc.config.root, timeout=svc.timeout)
    count, head = await store.head()
    # The one write that may not prove the anchor first: it is what repairs it.
    j = Journal(store, actor, svc.clock, svc.write_timeout, config=svc.config)
    event = await j.write(
        RESET,
        model="",
        reason=reason,
        result="anchored",
        details={"previous_anchor": held, "records_before": count, "head_before": head},
    )
    try:
        anchor, kept = await replace_anchor(svc.config.root, store, timeout=svc.timeout)
    except Exception as exc:
        raise ReleaseError(
            f"the re-anchoring was recorded (seq {event.seq}) but the anchor could not be "
            f"written: {exc}; run it again once that is fixed"
        ) from None
    was = f"; the old anchor is kept as {kept}" if kept else ""
    return ActionResult(
        action=RESET,
        status="executed",
        model="",
        message=f"the audit log is anchored anew at {anchor.count} records by {j.user} (it was: "
        f"{held}){was}",
        events=tuple(j.written),
    )
