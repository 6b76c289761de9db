"""The promote / approve / reject use cases: checks, request events, and hand-over to the
Executor once gates pass and the quorum is reached."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from console.domain import Actor
from console.identity import principal
from console.services.release import request_fold as rq
from console.services.release.gates import blocking_failures, gate_doc
from console.services.release.journal import Journal
from console.services.release.results import ActionResult, Refused, ReleaseError
from console.services.release.text import text_problem

if TYPE_CHECKING:
    from console.services.release.service import Context, ReleaseService


def need_reason(reason: str, action: str) -> str:
    text = reason.strip()
    if not text:
        raise Refused(f"{action} needs a reason (--reason TEXT)", kind="usage")
    problem = text_problem("reason", text)
    if problem:
        raise Refused(f"{action}: {problem}; nothing was changed", kind="usage")
    return text


async def _refuse(j: Journal, ctx: Context, action: str, exc: Refused, reason: str = "") -> None:
    """Record a refused attempt (best effort), then raise it."""
    rid = ctx.pending.id if ctx.pending else ""
    await j.try_write(
        action, model=ctx.model, version=ctx.version.version, stage=ctx.stage,
        before=ctx.expected, after=ctx.version.version, reason=reason or exc.message,
        result=rq.REFUSED, request_id=rid,
        details={"refusal": exc.message, "kind": exc.kind,
                 "gates": [gate_doc(q) for q in exc.gates]},
    )  # fmt: skip
    raise exc


def _check_gates(ctx: Context, evidence_hash: str | None, action: str) -> Refused | None:
    fails = blocking_failures(ctx.quality)
    if fails:
        return Refused(
            f"{action} refused by gates: " + "; ".join(f.detail for f in fails),
            kind="policy",
            gates=ctx.quality,
        )
    if evidence_hash and evidence_hash != ctx.evidence:
        return Refused(
            f"the gate evidence changed since it was shown (was {evidence_hash[:12]}, now "
            f"{ctx.evidence[:12]}); look at the gates again",
            kind="policy",
            gates=ctx.quality,
        )
    return None


def _check_binding(ctx: Context) -> Refused | None:
    """The approver decides on what was requested: the same commit and the same evidence."""
    view = ctx.pending
    if view is None:
        return None
    if view.commit and view.commit != ctx.version.commit:
        return Refused(
            f"approve refused: {ctx.model} {ctx.version.version} is now registered at commit "
            f"{ctx.version.commit[:12] or 'none'}, but {view.id} requested commit "
            f"{view.commit[:12]}; the request must be made again",
            kind="conflict",
            gates=ctx.quality,
        )
    if view.evidence_hash and view.evidence_hash != ctx.evidence:
        return Refused(
            f"approve refused: the evidence changed since {view.id} was requested (request "
            f"{view.evidence_hash[:12]}, now {ctx.evidence[:12]}); the request must be made "
            "again on the evidence as it is now",
            kind="policy",
            gates=ctx.quality,
        )
    return None


async def promote(
    svc: ReleaseService,
    model: str,
    version: str,
    stage: str,
    *,
    reason: str,
    ack_schema_change: bool = False,
    override_window: bool = False,
    evidence_hash: str | None = None,
    ack_rolled_back: bool = False,
) -> ActionResult:
    """Create (or continue) the request to move ``stage`` to ``version``; execute it when
    gates pass and the quorum is reached. With the stage already there, finish its deploy."""
    actor, role = await svc.admit("promote", model, version, stage)
    reason = need_reason(reason, "promote")
    ctx = await svc.context(
        model, version, stage, ack=ack_schema_change, acting=True, ack_rolled_back=ack_rolled_back
    )
    version = ctx.version.version  # as registered (`1.2.0` typed for `v1.2.0`)
    j = svc.journal(actor)
    if override_window and role != "admin":
        exc = Refused(f"--override-window needs the admin role; {j.user} is {role}", kind="role")
        await _refuse(j, ctx, rq.OVERRIDE, exc, reason)
    if ctx.target.current == version:
        return await finish_deploy(svc, ctx, j, reason)
    refusal = _check_gates(ctx, evidence_hash, "promote")
    if refusal is not None:
        await _refuse(j, ctx, rq.PROMOTE, refusal, reason)
    rid, created = await open_request(svc, ctx, j, reason)
    window = svc.process_gates(ctx, actor)[0]
    if override_window and window.gate == "window" and not window.passed:
        await j.write(
            rq.OVERRIDE, model=model, version=version, stage=stage, request_id=rid,
            reason=reason, result="overridden",
            details={"gate": "window", "observed": window.observed, "threshold": window.threshold},
        )  # fmt: skip
    await svc.refresh(ctx)
    return await advance(svc, ctx, actor, j, reason, action=ctx.op, created=created)


async def open_request(
    svc: ReleaseService, ctx: Context, j: Journal, reason: str
) -> tuple[str, bool]:
    """The pending request for this move, or a new one (a stale one is cancelled first).
    Returns (request id, created)."""
    model, version, stage = ctx.model, ctx.version.version, ctx.stage
    view = ctx.pending
    stale = _stale_request(ctx) if view is not None else ""
    if view is not None and stale:
        await j.write(
            rq.CANCEL, model=model, version=version, stage=stage, request_id=view.id,
            reason=f"superseded: {stale}", result="cancelled",
        )  # fmt: skip
        view = None
    if view is not None:
        return view.id, False
    rid = svc.new_id()
    await j.write(
        rq.REQUEST, model=model, version=version, stage=stage, before=ctx.expected,
        after=version, reason=reason, result="pending", request_id=rid,
        details={
            "kind": ctx.op, "expected": ctx.expected, "evidence_hash": ctx.evidence,
            "commit": ctx.version.commit, "ack_schema_change": ctx.ack,
            **({"ack_rolled_back": True, "rolled_back": ctx.incident.doc()}
               if ctx.ack_rolled_back and ctx.incident is not None else {}),
            "required_approvals": svc.required_approvals(ctx),
            "gates": [gate_doc(q) for q in ctx.quality],
        },
    )  # fmt: skip
    return rid, True


def _stale_request(ctx: Context) -> str:
    """Why the pending request no longer describes this move ("" when it still does): a
    request binds the stage's version, the commit and the evidence it was made on."""
    view = ctx.pending
    assert view is not None
    if view.request.from_version != ctx.expected:
        return (
            f"{ctx.stage} moved from {view.request.from_version or 'nothing'} to "
            f"{ctx.expected or 'nothing'} since the request"
        )
    if view.commit and view.commit != ctx.version.commit:
        return (
            f"{ctx.version.version} was re-registered at commit {ctx.version.commit[:12]} "
            f"(the request named {view.commit[:12]})"
        )
    if view.evidence_hash and view.evidence_hash != ctx.evidence:
        return (
            f"the evidence changed since the request (was {view.evidence_hash[:12]}, now "
            f"{ctx.evidence[:12]})"
        )
    return ""


async def approve(
    svc: ReleaseService,
    model: str,
    version: str,
    stage: str,
    *,
    comment: str = "",
    evidence_hash: str | None = None,
) -> ActionResult:
    """Approve the pending request, bound to this version and the evidence shown."""
    actor, role = await svc.admit("approve", model, version, stage)
    ctx = await svc.context(model, version, stage, op=None, acting=True)
    version = ctx.version.version
    j = svc.journal(actor)
    kind, why = svc.why_not_approver(ctx, actor)
    if why:
        await _refuse(j, ctx, rq.APPROVE, Refused(f"approve refused: {why}", kind=kind))
    assert ctx.pending is not None
    if ctx.expected != ctx.pending.request.from_version:
        exc = Refused(
            f"approve refused: {stage} of {model} now points at {ctx.expected or 'nothing'}, not "
            f"{ctx.pending.request.from_version or 'nothing'} as requested; the request must "
            "be made again",
            kind="conflict",
        )
        await _refuse(j, ctx, rq.APPROVE, exc)
    refusal = _check_gates(ctx, evidence_hash, "approve") or _check_binding(ctx)
    if refusal is not None:
        await _refuse(j, ctx, rq.APPROVE, refusal, comment)
    await j.write(
        rq.APPROVE, model=model, version=version, stage=stage, before=ctx.expected,
        after=version, reason=comment, result="approved", request_id=ctx.pending.id,
        details={"evidence_hash": ctx.evidence, "role": role,
                 "gates": [gate_doc(q) for q in ctx.quality]},
    )  # fmt: skip
    await svc.refresh(ctx)
    reason = ctx.pending.request.reason if ctx.pending else comment
    return await advance(svc, ctx, actor, j, reason, action=rq.APPROVE)


async def reject(
    svc: ReleaseService, model: str, version: str, stage: str, *, comment: str = ""
) -> ActionResult:
    """Reject the pending request; the requester rejecting it withdraws (cancels) it."""
    actor, role = await svc.admit("reject", model, version, stage)
    ctx = await svc.context(model, version, stage, op=None, acting=True)
    version = ctx.version.version
    j = svc.journal(actor)
    view = ctx.pending
    if view is None:
        exc = Refused(f"reject refused: {svc.why_not_approver(ctx, actor)[1]}", kind="policy")
        await _refuse(j, ctx, rq.REJECT, exc, comment)
    assert view is not None
    if j.user == view.request.requested_by:
        action, status = rq.CANCEL, "cancelled"
    elif role not in svc.approver_roles(ctx):
        exc = Refused(
            f"reject refused: {j.user} is {role}; deciding on {stage} needs one of: "
            f"{', '.join(svc.approver_roles(ctx))}",
            kind="role",
        )
        await _refuse(j, ctx, rq.REJECT, exc, comment)
        raise AssertionError("unreachable")
    else:
        action, status = rq.REJECT, "rejected"
    await j.write(
        action, model=model, version=version, stage=stage, before=ctx.expected, after=version,
        reason=comment, result=status, request_id=view.id,
        details={"evidence_hash": ctx.evidence, "role": role},
    )  # fmt: skip
    await svc.refresh(ctx)
    done = ctx.views.get(view.id, view)
    return ActionResult(
        action=action, status=status, model=model, version=version, stage=stage,
        message=f"{view.id} {status} by {j.user}" + (f": {comment}" if comment else ""),
        request=rq.request_doc(done), events=tuple(j.written),
        warnings=(*ctx.notices, *j.notes),
    )  # fmt: skip


async def advance(
    svc: ReleaseService,
    ctx: Context,
    actor: Actor,
    j: Journal,
    reason: str,
    *,
    action: str,
    created: bool = False,
) -> ActionResult:
    """Execute the pending request when the window and the quorum allow; else say what waits."""
    view = ctx.pending
    assert view is not None
    process = svc.process_gates(ctx, actor)
    waiting = [p for p in process if not p.passed]
    if not waiting:
        result = await svc.executor.execute(ctx, view, j, reason)
        with contextlib.suppress(ReleaseError):  # the move is recorded; this is for display
            await svc.refresh(ctx)
        done = ctx.views.get(view.id, view)
        return result.model_copy(
            update={"action": action, "request": rq.request_doc(done),
                    "gates": (*ctx.quality, *process)}
        )  # fmt: skip
    quorum_ok = all(p.passed for p in process if p.gate == "approvals")
    what = "; ".join(p.detail for p in waiting)
    if quorum_ok:  # only the change window holds it back: that is a refusal, not a wait
        raise Refused(
            f"{view.id} has its approvals but {what}; run `promote` again inside the window, "
            "or an admin adds --override-window",
            kind="policy",
            gates=(*ctx.quality, *process),
        )
    status = "requested" if created else "pending"
    return ActionResult(
        action=action, status=status, model=ctx.model, version=ctx.version.version, stage=ctx.stage,
        message=f"{view.id} ({principal(actor)}) {status}: waiting for {what}",
        request=rq.request_doc(view), gates=(*ctx.quality, *process),
        plan=svc.build_plan(ctx, actor), events=tuple(j.written),
        warnings=(*ctx.notices, *j.notes),
    )  # fmt: skip


async def finish_deploy(svc: ReleaseService, ctx: Context, j: Journal, reason: str) -> ActionResult:
    """The stage already points at the version: run its deploy if the last one did not succeed."""
    version, stage = ctx.version.version, ctx.stage
    outcomes = sorted(
        (e for v in ctx.views.values() for e in v.events
         if e.action == rq.OUTCOME and e.stage == stage),
        key=lambda e: e.seq,
    )  # fmt: skip
    last = outcomes[-1] if outcomes else None
    op = str(last.details.get("op", "")) if last else ""
    pending_deploy = (
        svc.ws.deploy is not None
        and last is not None
        and last.version == version
        and (
            (op in (rq.PROMOTE, rq.ROLLBACK) and last.result == rq.EXECUTED)
            or (op == "deploy" and last.result != rq.EXECUTED)
        )
    )
    if not pending_deploy or last is None:
        return svc.executor.result(
            ctx, j, "already", f"{stage} of {ctx.model} already points at {version}; nothing to do"
        )
    status, msg, nxt = await svc.executor.deploy(
        j, ctx.model, version, stage, last.request_id, reason, last.before or None
    )
    warnings = await svc.executor.anchor()
    return svc.executor.result(
        ctx, j, status, f"{stage} of {ctx.model} points at {version}; {msg}", nxt=nxt,
        warnings=warnings,
    )  # fmt: skip
