"""The plan a person previews and confirms: which stage pointer moves from what to what, the
deploy effect, every gate with its numbers, the approvals, and the audit events to be written."""

from __future__ import annotations

from datetime import datetime

from console.domain import Actor
from console.identity import actor_role, principal
from console.services.release import gates as g
from console.services.release.decisions import (
    ACTING_ROLES,
    Context,
    process_gates,
    why_not_approver,
)
from console.services.release.results import ApprovalStatus, Plan
from console.services.workspace import Workspace


def deploy_description(ws: Workspace, model: str, version: str, stage: str, user: str) -> str:
    """What the deploy effect will run, in words (or why there is none)."""
    deployer = ws.deploy
    if deployer is None:
        problem = ws.problems.get("deploy")
        return f"none ({problem})" if problem else "none (no deploy backend configured)"
    argv = getattr(deployer, "argv", None)
    if callable(argv):
        import shlex

        return f"{deployer.name}: {shlex.join(argv(model, version, stage, user))}"
    return f"{getattr(deployer, 'name', 'deploy')}: deploy {model} {version} to {stage}"


def build_plan(
    ctx: Context,
    actor: Actor,
    *,
    now: datetime,
    read_only: bool,
    deploy: str,
    deploys: bool,
    override: bool = False,
    confirm_name: bool = False,
) -> Plan:
    """What moves, the gates, the approvals, the audit steps, and what blocks it, for ``actor``
    as of ``now``. ``deploy``: what the deploy effect runs, in words (``deploy_description``);
    ``deploys``: whether there is a deploy backend to run it."""
    user, role = principal(actor), actor_role(actor, ctx.roles)
    process = process_gates(ctx, actor, now, override=override)
    gates = (*ctx.quality, *process)
    version = ctx.version.version
    already = ctx.target.current == version
    blockers = [g_.detail for g_ in g.blocking_failures(ctx.quality)]
    blockers += [p.detail for p in process if not p.passed]
    if ctx.sync_problem:
        blockers.append(f"the registry's shared state could not be fetched: {ctx.sync_problem}")
    may_request = ""
    if read_only:
        may_request = "the console is in read-only mode"
    elif role not in ACTING_ROLES:
        may_request = f"{user} is {role}"
    approvals = tuple(
        ApprovalStatus(
            actor=c.approval.actor,
            role=c.role,
            counts=c.counts,
            why=c.why,
            at=c.approval.at.isoformat(),
            comment=c.approval.comment,
        )
        for c in ctx.checks
    )
    return Plan(
        op=ctx.op,
        model=ctx.model,
        version=version,
        stage=ctx.stage,
        from_version=ctx.target.current,
        commit=ctx.version.commit,
        actor=user,
        role=role,
        deploy=deploy,
        gates=gates,
        evidence_hash=ctx.evidence,
        request_id=ctx.pending.id if ctx.pending else None,
        requested_by=ctx.pending.request.requested_by if ctx.pending else None,
        required_approvals=ctx.required,
        approvals=approvals,
        authors=ctx.authors,
        steps=steps(ctx, deploy if deploys else None),
        blockers=tuple(blockers),
        may_request=may_request,
        may_approve=why_not_approver(ctx, actor, read_only=read_only)[1],
        ready=not blockers and not already and not may_request,
        already=already,
        confirm_model_name=confirm_name,
        rolled_back=ctx.incident.doc() if ctx.incident is not None else None,
        notices=tuple(ctx.notices),
    )


def steps(ctx: Context, deploy: str | None) -> tuple[str, ...]:
    """The audit events and mutations, in order, that executing the plan writes (``deploy``:
    what the deploy effect runs; None without a deploy backend)."""
    cur, version = ctx.target.current or "nothing", ctx.version.version
    out: list[str] = []
    if ctx.pending is None:
        out.append(f"audit: {ctx.op} request (reason, gates, evidence {ctx.evidence[:12]})")
    need = ctx.required
    if need:
        out.append(
            f"audit: {need} approval(s) by {' or '.join(ctx.approvers)}, "
            "not the requester or an author"
        )
    out += [
        f"audit: intent ({ctx.op}) written and synced before any change",
        f"registry: {ctx.stage} of {ctx.model} {cur} -> {version} "
        f"(only if it still points at {cur})",
        f"audit: outcome ({ctx.op})",
    ]
    if deploy is not None:
        out += [
            "audit: intent (deploy)",
            f"deploy: {deploy}",
            "audit: outcome (deploy)",
        ]
    out.append("audit anchor: the log's head is anchored in the git ref")
    return tuple(out)
