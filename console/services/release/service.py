"""ReleaseService: the release use cases shared by the CLI and the TUI.

A dialog calls ``plan_promotion`` (what would move, the gates with their numbers, the approvals,
the audit events to be written), shows it, then calls ``promote``/``approve`` passing the
plan's ``evidence_hash`` so that what the person saw is what gets recorded and executed.

The service admits the actor, builds the Context (context.py), asks the rules (decisions.py,
pure), writes the request events through its Journal and hands approved moves to the Executor
(executor.py). None of those modules calls back into the service.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn, TypeVar

from console import identity as identity_module
from console.domain import Actor
from console.identity import IdentityProvider, Role, actor_role, principal
from console.services.notify import Notices, record_expiries
from console.services.overview import utcnow
from console.services.release import decisions as d
from console.services.release import request_fold as rq
from console.services.release.context import Reader, Settings, need_audit, need_registry
from console.services.release.decisions import ACTING_ROLES, Context
from console.services.release.executor import Executor
from console.services.release.gates import gate_doc
from console.services.release.journal import Anchoring, Journal
from console.services.release.plan import build_plan, deploy_description
from console.services.release.results import ActionResult, Plan, Reconciled, Refused, ReleaseError
from console.services.release.rollback import rollback_target
from console.services.workspace import Workspace

T = TypeVar("T")


def new_request_id() -> str:
    return "req-" + secrets.token_hex(6)


def _default_identity() -> Actor:
    # Looked up at call time so a test can replace console.identity.current_actor.
    return identity_module.current_actor()


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
        self.requests = rq.RequestLog(config=self.config)
        self._anchoring = anchor
        self.notices = Notices(workspace.notify)

    # -- collaborators, made from the service's settings as they are now ---------------------

    def settings(self) -> Settings:
        return Settings(
            config=self.config,
            clock=self.clock,
            timeout=self.timeout,
            write_timeout=self.write_timeout,
            read_only=self.read_only,
            lock_stale=self.lock_stale,
            reconcile_grace=self.reconcile_grace,
        )

    @property
    def reader(self) -> Reader:
        return Reader(self.ws, self.settings(), self.requests)

    @property
    def executor(self) -> Executor:
        return Executor(
            self.reader, journal=lambda: self.journal(self.identity()), anchoring=self.anchoring
        )

    def anchoring(self) -> Anchoring:
        """The audit log's anchor: proved before an action writes, advanced after it."""
        if self._anchoring is None:
            from console.audit.anchor import GitAnchor

            store = need_audit(self.ws)
            self._anchoring = GitAnchor(self.config.root, store, timeout=self.timeout)
        return self._anchoring

    def journal(self, actor: Actor) -> Journal:
        store = self.ws.audit
        return Journal(
            store,
            actor,
            self.clock,
            self.write_timeout,
            config=self.config,
            anchoring=self.anchoring() if store is not None else None,
            notices=self.notices,
        )

    # -- admission -----------------------------------------------------------------------

    def guard(self, action: str, allowed: tuple[str, ...] = ACTING_ROLES) -> tuple[Actor, Role]:
        """The actor and role, or Refused for read-only mode and roles that may not act."""
        actor = self.identity()
        role = actor_role(actor, self.config.roles)
        refusal = d.admission(action, actor, role, read_only=self.read_only, allowed=allowed)
        if refusal is not None:
            raise refusal
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
                    action,
                    model=model,
                    version=version,
                    stage=stage,
                    reason=exc.message,
                    result=rq.REFUSED,
                    details={"refusal": exc.message, "kind": exc.kind},
                )
            raise

    def check_stage(self, stage: str) -> None:
        d.check_stage(self.config, stage)

    # -- reading -------------------------------------------------------------------------

    async def sync_registry(self, *, strict: bool = True) -> str:
        """See context.Reader.sync_registry."""
        return await self.reader.sync_registry(strict=strict)

    async def request_views(self, model: str | None = None) -> list[rq.RequestView]:
        """Every request (of ``model``) folded from the audit log, expiry applied."""
        return list((await self.folded(model))[0].values())

    async def folded(
        self, model: str | None
    ) -> tuple[dict[str, rq.RequestView], list[rq.RequestView]]:
        """(every request of ``model`` by id, those still pending), expiry applied."""
        return await self.reader.folded(model)

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
        need_registry(self.ws)
        reader = self.reader
        unsynced = await reader.sync_registry(strict=acting)
        await reader.check_registry(model, stage)  # on the fetched state, before any record
        notices = await self.executor.open_intent_notices(model, settle=acting)
        if unsynced:
            notices.append(
                f"the registry could not be fetched ({unsynced}): this is the local view"
            )
        return await reader.read(
            model,
            version,
            stage,
            op=op,
            ack=ack,
            ack_rolled_back=ack_rolled_back,
            notices=tuple(notices),
            unsynced=unsynced,
        )

    async def refresh(self, ctx: Context) -> Context:
        """``ctx`` with its requests folded again after events were written (facts stay)."""
        return await self.reader.refresh(ctx)

    # -- plans ---------------------------------------------------------------------------

    def build_plan(
        self, ctx: Context, actor: Actor, *, override: bool = False, confirm_name: bool = False
    ) -> Plan:
        """The preview of ``ctx`` for ``actor`` (see console.services.release.plan)."""
        deploy = deploy_description(
            self.ws, ctx.model, ctx.version.version, ctx.stage, principal(actor)
        )
        return build_plan(
            ctx,
            actor,
            now=self.clock(),
            read_only=self.read_only,
            deploy=deploy,
            deploys=self.ws.deploy is not None,
            override=override,
            confirm_name=confirm_name,
        )

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

    async def plan_rollback(
        self, model: str, *, stage: str | None = None, to_version: str | None = None
    ) -> Plan:
        """Preview rolling ``stage`` (default: production) back to the previous version: from,
        to, gates (shown, not blocking), confirmation."""
        ctx = await self._rollback_context(model, stage, to_version)
        confirm = self.config.policy.rollback_for(ctx.stage).confirm_model_name
        return self.build_plan(ctx, self.identity(), confirm_name=confirm)

    # -- actions -------------------------------------------------------------------------

    async def _notified(self, model: str | None, action: Callable[[], Awaitable[T]]) -> T:
        """Run a release action: record the expiries of ``model`` it sees, run it, then settle
        its notifications."""
        if model is not None:
            await self._record_expiries(model)
        return await self.notices.after(action())

    async def _record_expiries(self, model: str) -> int:
        """The expired requests of ``model`` recorded once, by an actor who may act."""
        actor = self.identity()
        if self.read_only or actor_role(actor, self.config.roles) not in ACTING_ROLES:
            return 0
        views, _ = await self.folded(model)
        return await record_expiries(self.journal(actor), views.values(), self.config.policy)

    async def promote(
        self,
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
        """Request (and, when gates and quorum allow, execute) a promotion; with the stage
        already there, finish its deploy."""

        async def run() -> ActionResult:
            actor, role = await self.admit("promote", model, version, stage)
            text = d.need_reason(reason, "promote")
            ctx = await self.context(
                model,
                version,
                stage,
                ack=ack_schema_change,
                acting=True,
                ack_rolled_back=ack_rolled_back,
            )
            j = self.journal(actor)
            if override_window and role != "admin":
                exc = Refused(
                    f"--override-window needs the admin role; {j.user} is {role}", kind="role"
                )
                await self._refuse(j, ctx, rq.OVERRIDE, exc, text)
            if ctx.target.current == ctx.version.version:
                return await self._finish_deploy(ctx, j, text)
            refusal = d.gate_refusal(ctx, evidence_hash, "promote")
            if refusal is not None:
                await self._refuse(j, ctx, rq.PROMOTE, refusal, text)
            rid, created = await self._open_request(ctx, j, text)
            if override_window:
                await self._override_window(ctx, actor, j, rid, text)
            ctx = await self.refresh(ctx)
            return await self._advance(ctx, actor, j, text, action=ctx.op, created=created)

        return await self._notified(model, run)

    async def approve(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        comment: str = "",
        evidence_hash: str | None = None,
    ) -> ActionResult:
        """Approve the pending request, bound to this version and the evidence shown; executes
        it when this approval completes the quorum."""

        async def run() -> ActionResult:
            actor, role = await self.admit("approve", model, version, stage)
            ctx = await self.context(model, version, stage, op=None, acting=True)
            j = self.journal(actor)
            kind, why = d.why_not_approver(ctx, actor, read_only=self.read_only)
            if why:
                await self._refuse(
                    j, ctx, rq.APPROVE, Refused(f"approve refused: {why}", kind=kind)
                )
            assert ctx.pending is not None
            moved = d.moved_refusal(ctx)
            if moved is not None:
                await self._refuse(j, ctx, rq.APPROVE, moved)
            refusal = d.gate_refusal(ctx, evidence_hash, "approve") or d.binding_refusal(ctx)
            if refusal is not None:
                await self._refuse(j, ctx, rq.APPROVE, refusal, comment)
            await j.write(
                rq.APPROVE,
                model=model,
                version=ctx.version.version,
                stage=stage,
                before=ctx.expected,
                after=ctx.version.version,
                reason=comment,
                result="approved",
                request_id=ctx.pending.id,
                details={
                    "evidence_hash": ctx.evidence,
                    "role": role,
                    "gates": [gate_doc(q) for q in ctx.quality],
                },
            )
            ctx = await self.refresh(ctx)
            reason = ctx.pending.request.reason if ctx.pending else comment
            return await self._advance(ctx, actor, j, reason, action=rq.APPROVE)

        return await self._notified(model, run)

    async def reject(
        self, model: str, version: str, stage: str, *, comment: str = ""
    ) -> ActionResult:
        """Reject the pending request (the requester withdrawing it cancels it)."""

        async def run() -> ActionResult:
            actor, role = await self.admit("reject", model, version, stage)
            ctx = await self.context(model, version, stage, op=None, acting=True)
            version_ = ctx.version.version
            j = self.journal(actor)
            view = ctx.pending
            if view is None:
                why = d.why_not_approver(ctx, actor, read_only=self.read_only)[1]
                exc = Refused(f"reject refused: {why}", kind="policy")
                await self._refuse(j, ctx, rq.REJECT, exc, comment)
            decided = d.rejection(ctx, j.user, role)
            if isinstance(decided, Refused):
                await self._refuse(j, ctx, rq.REJECT, decided, comment)
            action, status = decided
            await j.write(
                action,
                model=model,
                version=version_,
                stage=stage,
                before=ctx.expected,
                after=version_,
                reason=comment,
                result=status,
                request_id=view.id,
                details={"evidence_hash": ctx.evidence, "role": role},
            )
            ctx = await self.refresh(ctx)
            done = ctx.views.get(view.id, view)
            return ActionResult(
                action=action,
                status=status,
                model=model,
                version=version_,
                stage=stage,
                message=f"{view.id} {status} by {j.user}" + (f": {comment}" if comment else ""),
                request=rq.request_doc(done),
                events=tuple(j.written),
                warnings=(*ctx.notices, *j.notes),
            )

        return await self._notified(model, run)

    async def rollback(
        self,
        model: str,
        *,
        reason: str,
        confirmation: str,
        stage: str | None = None,
        to_version: str | None = None,
    ) -> ActionResult:
        """Roll ``stage`` back (to ``to_version`` or the previous version) after a reason and
        the typed confirmation the policy asks for; executes at once unless the policy wants
        approvals."""

        async def run() -> ActionResult:
            stage_name = stage or self.config.prod_stage
            policy = self.config.policy.rollback_for(stage_name)
            actor, _ = await self.admit(
                "rollback", model, to_version or "", stage_name, tuple(policy.roles)
            )
            if not reason.strip():
                raise Refused("rollback needs a reason (--reason TEXT)", kind="usage")
            if policy.confirm_model_name and confirmation != model:
                raise Refused(
                    f"rollback not confirmed: type the model name {model!r} to confirm",
                    kind="usage",
                )
            ctx = await self._rollback_context(model, stage_name, to_version, acting=True)
            j = self.journal(actor)
            text = reason.strip()
            if ctx.target.current == ctx.version.version:
                return await self._finish_deploy(ctx, j, text)
            await self._open_request(ctx, j, text)
            ctx = await self.refresh(ctx)
            return await self._advance(ctx, actor, j, text, action=rq.ROLLBACK, created=True)

        return await self._notified(model, run)

    async def reconcile(self) -> list[Reconciled]:
        """Resolve intents that never got an outcome by reading the registry back."""
        return await self._notified(None, self.executor.reconcile)

    async def pending(self, model: str | None = None) -> list[rq.RequestView]:
        """Requests still waiting for approvals (of ``model``)."""
        return (await self.folded(model))[1]

    # -- the steps of the actions ------------------------------------------------------------

    async def _rollback_context(
        self, model: str, stage: str | None, to_version: str | None, *, acting: bool = False
    ) -> Context:
        stage = stage or self.config.prod_stage
        self.check_stage(stage)
        target, passed = await rollback_target(self.ws, self.settings(), model, stage, to_version)
        ctx = await self.context(model, target, stage, op=rq.ROLLBACK, acting=acting)
        if passed:
            note = f"rolling back to {target}, not to an earlier holder of {stage}: "
            ctx = replace(ctx, notices=(note + "; ".join(passed), *ctx.notices))
        return ctx

    async def _refuse(
        self, j: Journal, ctx: Context, action: str, exc: Refused, reason: str = ""
    ) -> NoReturn:
        """Record a refused attempt (best effort), then raise it."""
        rid = ctx.pending.id if ctx.pending else ""
        await j.try_write(
            action,
            model=ctx.model,
            version=ctx.version.version,
            stage=ctx.stage,
            before=ctx.expected,
            after=ctx.version.version,
            reason=reason or exc.message,
            result=rq.REFUSED,
            request_id=rid,
            details={
                "refusal": exc.message,
                "kind": exc.kind,
                "gates": [gate_doc(q) for q in exc.gates],
            },
        )
        raise exc

    async def _open_request(self, ctx: Context, j: Journal, reason: str) -> tuple[str, bool]:
        """The pending request for this move, or a new one (a stale one is cancelled first).
        Returns (request id, created)."""
        model, version, stage = ctx.model, ctx.version.version, ctx.stage
        view = ctx.pending
        stale = d.stale_request(ctx) if view is not None else ""
        if view is not None and stale:
            await j.write(
                rq.CANCEL,
                model=model,
                version=version,
                stage=stage,
                request_id=view.id,
                reason=f"superseded: {stale}",
                result="cancelled",
            )
            view = None
        if view is not None:
            return view.id, False
        rid = self.new_id()
        await j.write(
            rq.REQUEST,
            model=model,
            version=version,
            stage=stage,
            before=ctx.expected,
            after=version,
            reason=reason,
            result="pending",
            request_id=rid,
            details=d.request_details(ctx),
        )
        return rid, True

    async def _override_window(
        self, ctx: Context, actor: Actor, j: Journal, rid: str, reason: str
    ) -> None:
        """An admin lifting a closed change window: recorded before the request advances."""
        window = d.process_gates(ctx, actor, self.clock())[0]
        if window.gate == "window" and not window.passed:
            await j.write(
                rq.OVERRIDE,
                model=ctx.model,
                version=ctx.version.version,
                stage=ctx.stage,
                request_id=rid,
                reason=reason,
                result="overridden",
                details={
                    "gate": "window",
                    "observed": window.observed,
                    "threshold": window.threshold,
                },
            )

    async def _advance(
        self,
        ctx: Context,
        actor: Actor,
        j: Journal,
        reason: str,
        *,
        action: str,
        created: bool = False,
    ) -> ActionResult:
        """Execute the pending request when the window and the quorum allow; else say what
        waits."""
        view = ctx.pending
        assert view is not None
        process = d.process_gates(ctx, actor, self.clock())
        waiting = [p for p in process if not p.passed]
        if not waiting:
            result = await self.executor.execute(ctx, view, j, reason)
            with contextlib.suppress(ReleaseError):  # the move is recorded; this is for display
                ctx = await self.refresh(ctx)
            done = ctx.views.get(view.id, view)
            return result.model_copy(
                update={
                    "action": action,
                    "request": rq.request_doc(done),
                    "gates": (*ctx.quality, *process),
                }
            )
        quorum_ok = all(p.passed for p in process if p.gate == "approvals")
        what = "; ".join(p.detail for p in waiting)
        if quorum_ok:  # only the change window holds it back: that is a refusal, not a wait
            raise Refused(
                f"{view.id} has its approvals but {what}; run `promote` again inside the "
                "window, or an admin adds --override-window",
                kind="policy",
                gates=(*ctx.quality, *process),
            )
        status = "requested" if created else "pending"
        return ActionResult(
            action=action,
            status=status,
            model=ctx.model,
            version=ctx.version.version,
            stage=ctx.stage,
            message=f"{view.id} ({principal(actor)}) {status}: waiting for {what}",
            request=rq.request_doc(view),
            gates=(*ctx.quality, *process),
            plan=self.build_plan(ctx, actor),
            events=tuple(j.written),
            warnings=(*ctx.notices, *j.notes),
        )

    async def _finish_deploy(self, ctx: Context, j: Journal, reason: str) -> ActionResult:
        """The stage already points at the version: run its deploy if the last one did not
        succeed."""
        version, stage, executor = ctx.version.version, ctx.stage, self.executor
        last = d.unfinished_deploy(ctx, deploys=self.ws.deploy is not None)
        if last is None:
            return executor.result(
                ctx,
                j,
                "already",
                f"{stage} of {ctx.model} already points at {version}; nothing to do",
            )
        status, msg, nxt = await executor.deploy(
            j, ctx.model, version, stage, last.request_id, reason, last.before or None
        )
        warnings = await executor.anchor()
        return executor.result(
            ctx,
            j,
            status,
            f"{stage} of {ctx.model} points at {version}; {msg}",
            nxt=nxt,
            warnings=warnings,
        )
