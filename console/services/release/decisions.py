"""The release rules as pure functions over a frozen Context: who may act, which approvals
count, the change window and the quorum, and whether a request still describes the move.

Nothing here reads a backend or the clock: the caller passes ``now`` and what it read
(console.services.release.context builds the Context), so each rule is a table-driven test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from console.config import ConsoleConfig
from console.config.model import PolicyConfig, RolesConfig, StagePolicy
from console.domain import Actor, AuditEvent, GateResult, ModelVersion
from console.identity import Role, actor_role, is_same_person, principal
from console.services.incidents import RolledBack
from console.services.release import gates as g
from console.services.release import request_fold as rq
from console.services.release.facts import Target
from console.services.release.results import Refused
from console.services.release.text import text_problem

ACTING_ROLES: tuple[Role, ...] = ("release_manager", "admin")


@dataclass(frozen=True)
class Context:
    """Everything one decision about ``version`` of ``model`` in ``stage`` rests on."""

    op: str
    model: str
    stage: str
    policy: StagePolicy
    target: Target
    version: ModelVersion
    base: ModelVersion | None
    quality: tuple[GateResult, ...]
    evidence: str
    authors: tuple[str, ...]
    authors_unknown: str
    views: Mapping[str, rq.RequestView]
    open: tuple[rq.RequestView, ...]  # the pending ones among ``views``
    pending: rq.RequestView | None
    ack: bool
    roles: RolesConfig
    required: int  # approvals the op needs in this stage
    approvers: tuple[str, ...]  # the roles that may approve it
    checks: tuple[rq.ApprovalCheck, ...] = ()
    ack_rolled_back: bool = False
    incident: RolledBack | None = None  # the version's rollback record, if it was rolled back
    notices: tuple[str, ...] = ()  # open intents of the model, in words
    sync_problem: str = ""  # why the registry's shared state could not be fetched (previews)

    @property
    def expected(self) -> str | None:
        return self.target.current


# -- stages, roles and reasons -----------------------------------------------------------------


def check_stage(config: ConsoleConfig, stage: str) -> None:
    """Refused (usage) for a stage the config does not name."""
    if stage not in config.stages:
        origin = config.stages_origin
        raise Refused(
            f"unknown stage {stage!r}; stages are {', '.join(config.stages)}"
            + (f" (from {origin})" if origin else ""),
            kind="usage",
        )


def admission(
    action: str, actor: Actor, role: Role, *, read_only: bool, allowed: Sequence[str]
) -> Refused | None:
    """Why ``actor`` (of ``role``) may not start ``action`` at all; None when they may."""
    if read_only:
        return Refused(f"{action} refused: the console is in read-only mode", kind="read_only")
    if role == "viewer" or role not in allowed:
        return Refused(
            f"{action} refused: {principal(actor)} is {role.replace('_', ' ')}; "
            f"{action} needs one of: {', '.join(allowed)}",
            kind="role",
        )
    return None


def need_reason(reason: str, action: str) -> str:
    """The reason, trimmed; Refused (usage) when it is empty or not plain text."""
    text = reason.strip()
    if not text:
        raise Refused(f"{action} needs a reason (--reason TEXT)", kind="usage")
    problem = text_problem("reason", text)
    if problem:
        raise Refused(f"{action}: {problem}; nothing was changed", kind="usage")
    return text


# -- approvals and the quorum ------------------------------------------------------------------


def approval_rule(
    policy: PolicyConfig, stage_policy: StagePolicy, op: str, stage: str
) -> tuple[int, tuple[str, ...]]:
    """(approvals needed, the roles that may approve) for ``op`` in ``stage``."""
    if op == rq.ROLLBACK:
        rule = policy.rollback_for(stage)
        return rule.required_approvals, tuple(rule.roles)
    return stage_policy.required_approvals, tuple(stage_policy.approver_roles)


def judge_approvals(ctx: Context, now: datetime) -> Context:
    """``ctx`` with the approvals of its pending request judged as of ``now``."""
    if ctx.pending is None:
        return replace(ctx, checks=())
    checks = rq.check_approvals(
        ctx.pending,
        evidence_hash=ctx.evidence,
        now=now,
        ttl_hours=ctx.policy.approval_ttl_hours,
        allowed_roles=list(ctx.approvers),
        roles=ctx.roles,
        authors=ctx.authors,
    )
    return replace(ctx, checks=tuple(checks))


def process_gates(
    ctx: Context, actor: Actor, now: datetime, *, override: bool = False
) -> tuple[GateResult, ...]:
    """Change window and quorum, as of ``now``."""
    counted = [c for c in ctx.checks if c.counts]
    quorum = g.approvals_gate(
        ctx.required,
        [c.approval.actor for c in counted],
        [c.role for c in counted],
        list(ctx.approvers),
    )
    if ctx.op == rq.ROLLBACK:
        return (quorum,)
    by = ctx.pending.override_by if ctx.pending else ""
    if override and actor_role(actor, ctx.roles) == "admin":
        by = principal(actor)
    return (g.window_gate(ctx.policy.windows, now, overridden_by=by), quorum)


def why_not_approver(ctx: Context, actor: Actor, *, read_only: bool) -> tuple[str, str]:
    """("", "") when ``actor`` may approve the pending request; else (kind, reason)."""
    user, role = principal(actor), actor_role(actor, ctx.roles)
    version = ctx.version.version
    if read_only:
        return "read_only", "the console is in read-only mode"
    if ctx.pending is None:
        return "policy", (
            f"there is no pending request to move {ctx.stage} of {ctx.model} to {version}; "
            f"a release manager starts one with `promote {ctx.model} {version} --to {ctx.stage}`"
        )
    if user == ctx.pending.request.requested_by:
        return "four_eyes", (
            f"{user} requested {ctx.pending.id}; someone else must approve it (four-eyes)"
        )
    if ctx.authors_unknown:
        return "four_eyes", f"four-eyes can not be checked: {ctx.authors_unknown}"
    name = is_same_person(user, ctx.authors, ctx.roles)
    if name is not None:
        return "four_eyes", (
            f"{user} is an author of {version} ({name}); an author can not approve (four-eyes)"
        )
    if role not in ctx.approvers:
        return "role", (
            f"{user} is {role}; approving {ctx.stage} needs one of: {', '.join(ctx.approvers)}"
        )
    if any(c.approval.actor == user and c.counts for c in ctx.checks):
        return "policy", f"{user} already approved {ctx.pending.id}"
    return "", ""


def rejection(ctx: Context, user: str, role: str) -> tuple[str, str] | Refused:
    """(event, status) of ``user`` deciding against the pending request: the requester
    withdraws (cancels) it, an approver rejects it; Refused for anyone else."""
    assert ctx.pending is not None
    if user == ctx.pending.request.requested_by:
        return rq.CANCEL, "cancelled"
    if role not in ctx.approvers:
        return Refused(
            f"reject refused: {user} is {role}; deciding on {ctx.stage} needs one of: "
            f"{', '.join(ctx.approvers)}",
            kind="role",
        )
    return rq.REJECT, "rejected"


# -- gates, evidence and the request's binding --------------------------------------------------


def gate_refusal(ctx: Context, evidence_hash: str | None, action: str) -> Refused | None:
    """Refused when a quality gate blocks, or the evidence changed since it was shown."""
    fails = g.blocking_failures(ctx.quality)
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


def binding_refusal(ctx: Context) -> Refused | None:
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


def moved_refusal(ctx: Context) -> Refused | None:
    """Refused when the stage no longer points where the pending request expects it."""
    assert ctx.pending is not None
    if ctx.expected == ctx.pending.request.from_version:
        return None
    return Refused(
        f"approve refused: {ctx.stage} of {ctx.model} now points at {ctx.expected or 'nothing'}, "
        f"not {ctx.pending.request.from_version or 'nothing'} as requested; the request must "
        "be made again",
        kind="conflict",
    )


def stale_request(ctx: Context) -> str:
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


def request_details(ctx: Context) -> dict[str, Any]:
    """The ``details`` of the request event opening this move."""
    return {
        "kind": ctx.op,
        "expected": ctx.expected,
        "evidence_hash": ctx.evidence,
        "commit": ctx.version.commit,
        "ack_schema_change": ctx.ack,
        **(
            {"ack_rolled_back": True, "rolled_back": ctx.incident.doc()}
            if ctx.ack_rolled_back and ctx.incident is not None
            else {}
        ),
        "required_approvals": ctx.required,
        "gates": [g.gate_doc(q) for q in ctx.quality],
    }


def unfinished_deploy(ctx: Context, *, deploys: bool) -> AuditEvent | None:
    """With the stage already at the version: the last outcome in the stage when its deploy
    still has to run (the move executed but no deploy followed, or the deploy failed)."""
    version, stage = ctx.version.version, ctx.stage
    outcomes = sorted(
        (
            e
            for v in ctx.views.values()
            for e in v.events
            if e.action == rq.OUTCOME and e.stage == stage
        ),
        key=lambda e: e.seq,
    )
    last = outcomes[-1] if outcomes else None
    if not deploys or last is None or last.version != version:
        return None
    op = str(last.details.get("op", ""))
    moved = op in (rq.PROMOTE, rq.ROLLBACK) and last.result == rq.EXECUTED
    failed = op == "deploy" and last.result != rq.EXECUTED
    return last if moved or failed else None
