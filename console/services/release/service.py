"""ReleaseService: the release use cases shared by the CLI and the TUI.

A dialog calls ``plan_promotion`` (what would move, the gates with their numbers, the approvals,
the audit events to be written), shows it, then calls ``promote``/``approve`` passing the
plan's ``evidence_hash`` so that what the person saw is what gets recorded and executed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from console import identity as identity_module
from console.config.model import StagePolicy
from console.domain import Actor, GateResult, ModelVersion, RequestState
from console.domain.versions import other_spelling
from console.identity import IdentityProvider, Role, actor_role, is_same_person, principal
from console.ports import Deprecated, NotFound
from console.services.notify import Notices, notified
from console.services.release import gates as g
from console.services.release import request_fold as rq
from console.services.release.facts import (
    Target,
    Unavailable,
    call,
    describe,
    gather_facts,
    read_target,
    with_live_and_incident,
)
from console.services.release.journal import Anchoring, Journal
from console.services.release.request_fold import RequestLog
from console.services.release.results import (
    ActionResult,
    Plan,
    Reconciled,
    Refused,
    ReleaseError,
)
from console.services.workspace import Workspace

ACTING_ROLES: tuple[Role, ...] = ("release_manager", "admin")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_request_id() -> str:
    return "req-" + secrets.token_hex(6)


def _default_identity() -> Actor:
    # Looked up at call time so a test can replace console.identity.current_actor.
    return identity_module.current_actor()


@dataclass
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
    views: dict[str, rq.RequestView]
    open: list[rq.RequestView]  # the pending ones among ``views``
    pending: rq.RequestView | None
    ack: bool
    checks: list[rq.ApprovalCheck] = field(default_factory=list)
    ack_rolled_back: bool = False
    incident: Any = None  # services.incidents.RolledBack of the version, if it was rolled back
    notices: list[str] = field(default_factory=list)  # open intents of the model, in words
    sync_problem: str = ""  # why the registry's shared state could not be fetched (previews)

    @property
    def expected(self) -> str | None:
        return self.target.current


class ReleaseService:
    """Promotion requests, approvals, CAS promotion, rollback and reconciliation."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        identity: IdentityProvider | None = None,
        clock: Callable[[], datetime] = utcnow,
        read_only: bool = False,
        new_id: Callable[[], str] = new_request_id,
        reconcile_grace: timedelta = timedelta(minutes=10),
        anchor: Anchoring | None = None,
    ) -> None:
        """``anchor``: where the audit log is anchored (default: the git ref in the workspace's
        repository, console.audit.anchor.GitAnchor); tests give a fake."""
        self.ws = workspace
        self.config = workspace.config
        self.identity = identity or _default_identity
        self.clock = clock
        self.read_only = read_only
        self.new_id = new_id
        self.timeout = self.config.timeout_seconds
        self.write_timeout = max(4 * self.timeout, 20.0)
        self.reconcile_grace = reconcile_grace
        # An intent older than this can no longer be in the middle of its registry write.
        self.lock_stale = timedelta(seconds=self.write_timeout + 2 * self.timeout + 30)
        # The audit log's requests, folded as it grows.
        self.requests = RequestLog(config=self.config)
        self._anchoring = anchor
        self.notices = Notices(workspace.notify)
        from console.services.release.promote import Executor

        self.executor = Executor(self)

    # -- ports and people ----------------------------------------------------------------

    def port(self, kind: str) -> Any:
        """The backend of ``kind``; ReleaseError saying why when a required one is missing."""
        backend = self.ws.get(kind)
        if backend is None and kind in ("registry", "audit"):
            problem = self.ws.problems.get(kind) or f"no {kind} backend is configured"
            raise ReleaseError(f"{kind}: {problem}; nothing was changed")
        return backend

    def anchoring(self) -> Anchoring:
        """The audit log's anchor: proved before an action writes, advanced after it."""
        if self._anchoring is None:
            from console.audit.anchor import GitAnchor

            store = self.port("audit")
            self._anchoring = GitAnchor(self.config.root, store, timeout=self.timeout)
        return self._anchoring

    def journal(self, actor: Actor) -> Journal:
        store = self.ws.audit
        return Journal(
            store, actor, self.clock, self.write_timeout, config=self.config,
            anchoring=self.anchoring() if store is not None else None, notices=self.notices,
        )  # fmt: skip

    def guard(self, action: str, allowed: tuple[str, ...] = ACTING_ROLES) -> tuple[Actor, Role]:
        """The actor and role, or Refused for read-only mode and roles that may not act."""
        actor = self.identity()
        role = actor_role(actor, self.config.roles)
        if self.read_only:
            raise Refused(f"{action} refused: the console is in read-only mode", kind="read_only")
        if role == "viewer" or role not in allowed:
            raise Refused(
                f"{action} refused: {principal(actor)} is {role.replace('_', ' ')}; "
                f"{action} needs one of: {', '.join(allowed)}",
                kind="role",
            )
        return actor, role

    async def admit(
        self,
        action: str,
        model: str,
        version: str = "",
        stage: str = "",
        allowed: tuple[str, ...] = ACTING_ROLES,
    ) -> tuple[Actor, Role]:
        """``guard``, recording a refusal by role as a failed attempt (read-only writes nothing)."""
        try:
            return self.guard(action, allowed)
        except Refused as exc:
            if exc.kind == "role":
                await self.journal(self.identity()).try_write(
                    action, model=model, version=version, stage=stage, reason=exc.message,
                    result=rq.REFUSED, details={"refusal": exc.message, "kind": exc.kind},
                )  # fmt: skip
            raise

    def check_stage(self, stage: str) -> None:
        if stage not in self.config.stages:
            origin = self.config.stages_origin
            raise Refused(
                f"unknown stage {stage!r}; stages are {', '.join(self.config.stages)}"
                + (f" (from {origin})" if origin else ""),
                kind="usage",
            )

    async def check_registry(self, registry: Any, model: str, stage: str) -> None:
        """Refuse what the registry itself would refuse (a stage its own config does not
        allow, a deprecated model) before anything is recorded, not after the request."""
        check = getattr(registry, "check_move", None)
        if check is None:
            return
        try:
            await asyncio.wait_for(check(model, stage), self.timeout)
        except NotFound as exc:
            raise Refused(str(exc), kind="not_found") from None
        except Deprecated as exc:
            raise Refused(str(exc), kind="policy") from None
        except Exception as exc:
            why = describe(exc, "registry", self.timeout, self.config)
            raise ReleaseError(f"registry: {why}; nothing was changed") from None

    # -- the shared state ------------------------------------------------------------------

    async def sync_registry(self, *, strict: bool = True) -> str:
        """Bring the registry's local view up to date with its shared truth (a GTO workspace's
        git remote) before a decision. ``strict``: ReleaseError when that fails (an action
        refuses); else the reason in words (a preview shows it)."""
        sync = getattr(self.port("registry"), "sync", None)
        if not callable(sync):
            return ""
        try:
            await asyncio.wait_for(sync(), self.write_timeout)
        except Exception as exc:
            why = describe(exc, "registry", self.write_timeout, self.config)
            if strict:
                raise ReleaseError(
                    f"refused: the registry's shared state could not be fetched ({why}); a "
                    "release decision needs it, so nothing was changed"
                ) from None
            return why
        return ""

    async def open_intent_notices(self, model: str, *, settle: bool) -> list[str]:
        """Every open (locking) intent of ``model``, named; with ``settle``, those whose writer
        is gone are reconciled first (their outcome is recorded from the registry's truth)."""
        from console.services.release.promote import reconciled_note

        store = self.ws.audit
        lister = getattr(store, "open_intents", None)
        if not callable(lister):
            return []
        try:
            opened = await call("audit", lister(model=model), self.timeout, self.config)
        except Unavailable as exc:
            return [f"the open intents of {model} can not be read: {exc}"]
        out: list[str] = []
        j: Journal | None = None
        for intent in opened:
            stale = self.executor.is_stale(intent)
            if settle and stale and not self.read_only:
                j = j or self.journal(self.identity())
                out.append(reconciled_note(await self.executor.reconcile_one(j, intent)))
                continue
            age = int((self.clock() - intent.at).total_seconds())
            op = intent.details.get("op", "move")
            out.append(
                f"intent seq {intent.seq} ({op} {model} {intent.after or 'nothing'} to "
                f"{intent.stage} by {intent.actor}, {max(age, 0)}s ago) has no outcome yet: "
                + ("its console is gone; the next action reconciles it" if stale
                   else "it may still be running")
            )  # fmt: skip
        if j is not None and j.written:
            await self.executor.anchor()
        return out

    # -- reading -------------------------------------------------------------------------

    async def request_views(self, model: str | None = None) -> list[rq.RequestView]:
        """Every request (of ``model``) folded from the audit log, expiry applied."""
        return list((await self.folded(model))[0].values())

    async def folded(
        self, model: str | None
    ) -> tuple[dict[str, rq.RequestView], list[rq.RequestView]]:
        """(every request of ``model`` by id, those still pending), expiry applied. The fold
        is kept and extended by what was appended since the last read (request_fold.RequestLog)."""
        store = self.port("audit")
        try:
            views, open_ids = await self.requests.read(store, model, self.timeout)
        except Unavailable as exc:
            raise ReleaseError(f"audit: {exc}; nothing was changed") from None
        now = self.clock()
        ttl: dict[str, float] = {}
        pending: list[rq.RequestView] = []
        for rid in open_ids:
            view, stage = views[rid], views[rid].request.stage
            if stage not in ttl:
                ttl[stage] = self.config.policy.for_stage(stage).request_ttl_hours
            view = views[rid] = rq.expired_copy(view, now, ttl[stage])
            if view.state is RequestState.PENDING:
                pending.append(view)
        return views, pending

    async def context(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        op: str | None = rq.PROMOTE,
        ack: bool = False,
        ack_rolled_back: bool = False,
        acting: bool = False,
    ) -> Context:
        """Read the registry, facts and requests a decision needs; evaluate quality gates.
        ``op`` None: whichever kind of request is pending (approve, reject). ``acting``: for
        an action, not a preview: the registry must be fetched, and open intents whose writer
        is gone are reconciled (a preview only names them)."""
        self.check_stage(stage)
        registry = self.port("registry")
        unsynced = await self.sync_registry(strict=acting)
        await self.check_registry(registry, model, stage)  # on the fetched state, before any record
        notices = await self.open_intent_notices(model, settle=acting)
        if unsynced:
            notices.append(
                f"the registry could not be fetched ({unsynced}): this is the local view"
            )
        try:
            target = await read_target(registry, model, stage, self.timeout, self.config)
        except NotFound as exc:
            raise Refused(str(exc), kind="not_found") from None
        except Unavailable as exc:
            raise ReleaseError(f"registry: {exc}; nothing was changed") from None
        mv = target.version(version) or target.version(other_spelling(version))
        if mv is None or mv.deregistered:
            newest = [v.version for v in reversed(target.versions) if not v.deregistered]
            known = ", ".join(newest[:5]) or "none"
            gone = "was deregistered" if mv else "is not a registered version"
            raise Refused(f"{model} {version} {gone} (newest: {known})", kind="not_found")
        version = mv.version
        base = target.version(target.current) if target.current else None
        views, open_ = await self.folded(model)
        pending = rq.pending_for(
            open_,
            model,
            version,
            stage,
            rollback=None if op is None else op == rq.ROLLBACK,
        )
        if op is None:
            op = pending.op if pending is not None else rq.PROMOTE
        ack = ack or bool(pending and pending.ack_schema_change)
        ack_rb = ack_rolled_back or bool(
            pending and pending.events and pending.events[0].details.get("ack_rolled_back")
        )
        facts, authors, unknown = await gather_facts(self.ws, model, mv, stage, base, self.timeout)
        facts = await with_live_and_incident(self.ws, facts, self.timeout, live=op != rq.ROLLBACK)
        policy = self.config.policy.for_stage(stage)
        quality = g.quality_gates(
            policy, facts, self.config.metric_spec, ack_schema_change=ack,
            ack_rolled_back=ack_rb, stages=self.config.stages, now=self.clock(),
        )  # fmt: skip
        if op == rq.ROLLBACK:  # shown, never blocking: rollbacks happen during incidents
            quality = tuple(q.model_copy(update={"blocking": False}) for q in quality)
        evidence = g.evidence_hash(model, version, stage, mv.commit, target.current, quality)
        ctx = Context(
            op=op, model=model, stage=stage, policy=policy, target=target, version=mv, base=base,
            quality=quality, evidence=evidence, authors=authors, authors_unknown=unknown,
            views=views, open=open_, pending=pending, ack=ack, notices=notices,
            sync_problem=unsynced, ack_rolled_back=ack_rb, incident=facts.rolled_back,
        )  # fmt: skip
        self.judge_approvals(ctx)
        return ctx

    def required_approvals(self, ctx: Context) -> int:
        if ctx.op == rq.ROLLBACK:
            return self.config.policy.rollback_for(ctx.stage).required_approvals
        return ctx.policy.required_approvals

    def approver_roles(self, ctx: Context) -> list[str]:
        if ctx.op == rq.ROLLBACK:
            return list(self.config.policy.rollback_for(ctx.stage).roles)
        return list(ctx.policy.approver_roles)

    def judge_approvals(self, ctx: Context) -> None:
        if ctx.pending is None:
            ctx.checks = []
            return
        ctx.checks = rq.check_approvals(
            ctx.pending,
            evidence_hash=ctx.evidence,
            now=self.clock(),
            ttl_hours=ctx.policy.approval_ttl_hours,
            allowed_roles=self.approver_roles(ctx),
            roles=self.config.roles,
            authors=ctx.authors,
        )

    def process_gates(
        self, ctx: Context, actor: Actor, *, override: bool = False
    ) -> tuple[GateResult, ...]:
        """Change window and quorum, as of now."""
        counted = [c for c in ctx.checks if c.counts]
        quorum = g.approvals_gate(
            self.required_approvals(ctx),
            [c.approval.actor for c in counted],
            [c.role for c in counted],
            self.approver_roles(ctx),
        )
        if ctx.op == rq.ROLLBACK:
            return (quorum,)
        by = ctx.pending.override_by if ctx.pending else ""
        if override and actor_role(actor, self.config.roles) == "admin":
            by = principal(actor)
        return (g.window_gate(ctx.policy.windows, self.clock(), overridden_by=by), quorum)

    def why_not_approver(self, ctx: Context, actor: Actor) -> tuple[str, str]:
        """("", "") when ``actor`` may approve the pending request; else (kind, reason)."""
        user, role = principal(actor), actor_role(actor, self.config.roles)
        version = ctx.version.version
        if self.read_only:
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
        name = is_same_person(user, ctx.authors, self.config.roles)
        if name is not None:
            return "four_eyes", (
                f"{user} is an author of {version} ({name}); an author can not approve (four-eyes)"
            )
        allowed = self.approver_roles(ctx)
        if role not in allowed:
            return "role", (
                f"{user} is {role}; approving {ctx.stage} needs one of: {', '.join(allowed)}"
            )
        if any(c.approval.actor == user and c.counts for c in ctx.checks):
            return "policy", f"{user} already approved {ctx.pending.id}"
        return "", ""

    async def refresh(self, ctx: Context) -> None:
        """Re-fold the requests of ``ctx`` after events were written (facts stay as read)."""
        ctx.views, ctx.open = await self.folded(ctx.model)
        ctx.pending = rq.pending_for(
            ctx.open, ctx.model, ctx.version.version, ctx.stage,
            rollback=ctx.op == rq.ROLLBACK,
        )  # fmt: skip
        self.judge_approvals(ctx)

    # -- plans ---------------------------------------------------------------------------

    def deploy_description(self, model: str, version: str, stage: str, user: str) -> str:
        from console.services.release.plan import deploy_description

        return deploy_description(self, model, version, stage, user)

    def build_plan(
        self, ctx: Context, actor: Actor, *, override: bool = False, confirm_name: bool = False
    ) -> Plan:
        """The preview of ``ctx`` for ``actor`` (see console.services.release.plan)."""
        from console.services.release.plan import build_plan

        return build_plan(self, ctx, actor, override=override, confirm_name=confirm_name)

    async def plan_promotion(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        ack_schema_change: bool = False,
        override_window: bool = False,
        ack_rolled_back: bool = False,
    ) -> Plan:
        """Preview promoting ``version`` to ``stage`` for the current actor; changes nothing."""
        ctx = await self.context(
            model, version, stage, ack=ack_schema_change, ack_rolled_back=ack_rolled_back
        )
        return self.build_plan(ctx, self.identity(), override=override_window)

    async def plan_approval(self, model: str, version: str, stage: str) -> Plan:
        """Preview deciding on the pending request (promotion or rollback) for ``version``:
        the approve dialog shows ``gates``, ``approvals`` and ``may_approve``, then calls
        ``approve(..., evidence_hash=plan.evidence_hash)``."""
        ctx = await self.context(model, version, stage, op=None)
        return self.build_plan(ctx, self.identity())

    # -- actions (bodies in actions.py / rollback.py) -------------------------------------

    async def promote(
        self, model: str, version: str, stage: str, *, reason: str, **kw: Any
    ) -> ActionResult:
        """Request (and, when gates and quorum allow, execute) a promotion."""
        from console.services.release.actions import promote

        return await notified(
            self, model, lambda: promote(self, model, version, stage, reason=reason, **kw)
        )

    async def approve(self, model: str, version: str, stage: str, **kw: Any) -> ActionResult:
        """Approve the pending request; executes it when this approval completes the quorum."""
        from console.services.release.actions import approve

        return await notified(self, model, lambda: approve(self, model, version, stage, **kw))

    async def reject(self, model: str, version: str, stage: str, **kw: Any) -> ActionResult:
        """Reject the pending request (the requester withdrawing it cancels it)."""
        from console.services.release.actions import reject

        return await notified(self, model, lambda: reject(self, model, version, stage, **kw))

    async def plan_rollback(
        self, model: str, *, stage: str | None = None, to_version: str | None = None
    ) -> Plan:
        """Preview rolling ``stage`` (default: production) back to the previous version."""
        from console.services.release.rollback import plan_rollback

        return await plan_rollback(self, model, stage=stage, to_version=to_version)

    async def rollback(
        self, model: str, *, reason: str, confirmation: str, **kw: Any
    ) -> ActionResult:
        """Roll back after a reason and the typed confirmation the policy asks for."""
        from console.services.release.rollback import rollback

        return await notified(
            self,
            model,
            lambda: rollback(self, model, reason=reason, confirmation=confirmation, **kw),
        )

    async def reconcile(self) -> list[Reconciled]:
        """Resolve intents that never got an outcome by reading the registry back."""
        return await notified(self, None, self.executor.reconcile)

    async def pending(self, model: str | None = None) -> list[rq.RequestView]:
        """Requests still waiting for approvals (of ``model``)."""
        return (await self.folded(model))[1]
