"""Executing a move: fail-closed audit around a compare-and-set registry update, the deploy
effect, the audit anchor, and reconciliation of intents that never got an outcome.

Rules: an ``intent`` is durably written before any mutation (no intent, no mutation); an
``outcome`` follows it. Nothing is retried. When the registry does not answer, it is read
back and the truth recorded; when even that fails, the intent stays open for ``reconcile``.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from console.domain import AuditEvent
from console.logs import excerpt
from console.ports import Conflict
from console.services.release import requests as rq
from console.services.release.facts import Unavailable, current_assignment, describe
from console.services.release.gates import gate_doc
from console.services.release.journal import Journal
from console.services.release.results import ActionResult, Reconciled, Refused, ReleaseError

if TYPE_CHECKING:
    from console.services.release.service import Context, ReleaseService

log = logging.getLogger(__name__)
RECONCILE_WINDOW = 5000  # newest events scanned for open intents


def command(svc: ReleaseService, *args: str) -> str:
    """A copy-pasteable ``cd4ml-console`` command for this workspace."""
    where = (
        ["--config", str(svc.config.source)] if svc.config.source else ["-w", str(svc.config.root)]
    )
    return shlex.join(["cd4ml-console", *where, *args])


class Executor:
    """Runs approved moves and deploys, and reconciles what a crash left open."""

    def __init__(self, svc: ReleaseService, *, anchor: Callable[[], Any] | None = None) -> None:
        self.svc = svc
        self._anchor = anchor

    # -- the move ------------------------------------------------------------------------

    async def execute(
        self, ctx: Context, view: rq.RequestView, j: Journal, reason: str
    ) -> ActionResult:
        """Move the stage pointer (CAS on what the approvers saw), then deploy and anchor."""
        svc, registry = self.svc, self.svc.port("registry")
        model, stage, target = ctx.model, ctx.stage, ctx.version.version
        expected, op = view.request.from_version, view.op
        try:
            now = await current_assignment(registry, model, stage, svc.timeout, svc.config)
        except Unavailable as exc:
            raise ReleaseError(f"registry: {exc}; nothing was changed") from None
        actual = now.version if now else None
        if actual == target:
            return self.result(ctx, j, "already", f"{stage} of {model} already points at {target}")
        if actual != expected:
            by = f" (moved by {now.assigned_by} at {now.assigned_at:%Y-%m-%d %H:%M} UTC)" if (
                now and now.assigned_by and now.assigned_at) else ""  # fmt: skip
            msg = (
                f"nothing changed: {stage} of {model} now points at {actual or 'nothing'}, not "
                f"{expected or 'nothing'} as the approvers saw{by}; review and request again"
            )
            await j.try_write(op, model=model, version=target, stage=stage, before=actual,
                              after=target, reason=msg, result=rq.CONFLICT, request_id=view.id)  # fmt: skip
            raise Refused(msg, kind="conflict", details={"actual": actual, "expected": expected})
        intent = await j.write(
            rq.INTENT,
            model=model, version=target, stage=stage, before=expected, after=target,
            reason=reason, result="pending", request_id=view.id,
            details={
                "op": op, "expected": expected, "target": target, "commit": ctx.version.commit,
                "evidence_hash": ctx.evidence,
                "approvals": [c.approval.actor for c in ctx.checks if c.counts],
                "gates": [gate_doc(q) for q in ctx.quality],
            },
        )  # fmt: skip
        message = f"{op} {model} {target} to {stage} ({view.id}) by {j.user}: {reason}"
        try:
            await asyncio.wait_for(
                registry.assign(model, target, stage, actor=j.user, message=message,
                                expected=expected),
                svc.write_timeout,
            )  # fmt: skip
        except Conflict as exc:
            who = f" by {exc.changed_by}" if exc.changed_by else ""
            msg = (
                f"nothing changed: {stage} of {model} moved to {exc.actual or 'something else'}"
                f"{who} while this request executed ({exc.message})"
            )
            await self.outcome(j, intent, rq.CONFLICT, msg, {"actual": exc.actual,
                               "changed_by": exc.changed_by}, moved=False)  # fmt: skip
            raise Refused(msg, kind="conflict", details={"actual": exc.actual}) from None
        except Exception as exc:
            moved = await self.read_back(ctx, j, intent, exc)
            if moved is not None:
                return moved
        else:
            await self.outcome(j, intent, rq.EXECUTED, f"{stage}: {expected} -> {target}", {})
        return await self.after_move(ctx, j, view.id, reason, expected, op)

    async def read_back(
        self, ctx: Context, j: Journal, intent: AuditEvent, exc: BaseException
    ) -> ActionResult | None:
        """After a failed or timed-out move, record what the registry says is true.
        Returns None when the move did happen (the caller goes on to deploy)."""
        svc, model, stage, target = self.svc, ctx.model, ctx.stage, ctx.version.version
        why = describe(exc, "registry", svc.write_timeout, svc.config)
        expected = intent.before or None
        try:
            now = await current_assignment(
                svc.port("registry"), model, stage, svc.timeout, svc.config
            )
        except Unavailable as err:
            msg = (
                f"the outcome is unknown: moving {stage} of {model} to {target} failed ({why}) "
                f"and reading it back failed too ({err}). Nothing is retried; check with "
                f"`{command(svc, 'status', model)}` — intent seq {intent.seq} is reconciled on "
                "the next start"
            )
            return self.result(ctx, j, "unknown", msg)
        actual = now.version if now else None
        if actual == target:
            await self.outcome(j, intent, rq.EXECUTED, f"{why}; read back: {stage} is {target}", {})
            return None
        result = rq.FAILED
        msg = (
            f"{stage} of {model} did not move ({why}); it still points at {actual or 'nothing'}"
            if actual == expected
            else f"{stage} of {model} did not move to {target} ({why}); it now points at "
            f"{actual or 'nothing'}"
        )
        await self.outcome(j, intent, result, msg, {"actual": actual}, moved=False)
        return self.result(ctx, j, "failed", msg + "; nothing is retried automatically")

    async def outcome(
        self,
        j: Journal,
        intent: AuditEvent,
        result: str,
        reason: str,
        details: dict[str, Any],
        *,
        moved: bool = True,
    ) -> AuditEvent:
        """Record the outcome of ``intent``; if that write fails after a move, say so exactly."""
        op = str(intent.details.get("op", ""))
        try:
            return await j.write(
                rq.OUTCOME, model=intent.model, version=intent.version, stage=intent.stage,
                before=intent.before, after=intent.after, reason=reason, result=result,
                request_id=intent.request_id,
                details={"op": op, "intent_seq": intent.seq, **details},
            )  # fmt: skip
        except ReleaseError as exc:
            done = (
                f"{intent.stage} of {intent.model} now points at {intent.after}"
                if moved and result == rq.EXECUTED
                else "nothing changed"
            )
            raise ReleaseError(
                f"{done}, but the audit log could not record the outcome ({exc.message}); "
                f"intent seq {intent.seq} is reconciled on the next start"
            ) from None

    async def after_move(
        self, ctx: Context, j: Journal, request_id: str, reason: str, before: str | None, op: str
    ) -> ActionResult:
        """Anchor, then run the deploy effect; a deploy failure is reported as exactly that."""
        model, stage, version = ctx.model, ctx.stage, ctx.version.version
        for other in ctx.open:  # their "expected" is gone: close them, audited
            r = other.request
            if other.id != request_id and r.stage == stage and r.state.value == "pending":
                await j.try_write(
                    rq.CANCEL, model=model, version=r.version, stage=stage, request_id=other.id,
                    reason=f"superseded: {stage} moved to {version} ({request_id})",
                    result="cancelled",
                )  # fmt: skip
        status, msg, nxt = await self.deploy(j, model, version, stage, request_id, reason, before)
        warnings = await self.anchor()
        moved = f"{stage} of {model}: {before or 'nothing'} -> {version} ({op}, {request_id})"
        return self.result(
            ctx, j, status, f"{moved}; {msg}" if msg else moved, nxt=nxt, warnings=warnings
        )

    # -- the deploy effect ---------------------------------------------------------------

    async def deploy(
        self,
        j: Journal,
        model: str,
        version: str,
        stage: str,
        request_id: str,
        reason: str,
        before: str | None,
    ) -> tuple[str, str, str]:
        """(status, message, next command). No deploy backend: nothing to run."""
        svc = self.svc
        deployer = svc.ws.get("deploy")
        if deployer is None:
            return "executed", "", ""
        retry = command(svc, "promote", model, version, "--to", stage, "--reason",
                        f"finish deploy of {request_id}")  # fmt: skip
        revert = (
            command(svc, "rollback", model, "--stage", stage, "--to", before, "--reason", "REASON")
            if before
            else ""
        )
        finish = f"finish it with: {retry}" + (f"  — or revert it with: {revert}" if revert else "")
        try:
            intent = await j.write(
                rq.INTENT, model=model, version=version, stage=stage, before=before, after=version,
                reason=reason, result="pending", request_id=request_id,
                details={"op": "deploy", "deployer": getattr(deployer, "name", "")},
            )  # fmt: skip
        except ReleaseError as exc:
            return "deploy_failed", f"the deploy did not run: {exc.message}; {finish}", retry
        cfg = getattr(deployer, "config", None)
        own = getattr(cfg, "timeout_seconds", None)
        limit = float(own) + 10 if isinstance(own, int | float) else 600.0
        try:
            said = await asyncio.wait_for(
                deployer.deploy(model, version, stage, actor=j.user), limit
            )
        except TimeoutError:
            msg = f"the deploy did not finish within {limit:g}s: its effect is unknown"
            lost = await self._deploy_outcome(j, intent, rq.UNKNOWN, msg)
            return "unknown", f"{msg}; check the deployment, then {finish}{lost}", retry
        except Exception as exc:
            why = describe(exc, "deploy", limit, svc.config)
            if "timed out" in why:  # the deployer gave up waiting: the effect is unknown
                msg = f"the registry moved, but the deploy did not finish: {why}"
                lost = await self._deploy_outcome(j, intent, rq.UNKNOWN, msg)
                return "unknown", f"{msg}; check the deployment, then {finish}{lost}", retry
            msg = f"the registry moved, but the deploy effect failed: {why}"
            lost = await self._deploy_outcome(j, intent, rq.FAILED, msg)
            return "deploy_failed", f"{msg}; {finish}{lost}", retry
        said = excerpt(str(said), 500)  # a deployer's words: one line, masked, then cut
        lost = await self._deploy_outcome(j, intent, rq.EXECUTED, said)
        return "executed", f"deployed: {said}{lost}", ""

    async def _deploy_outcome(self, j: Journal, intent: AuditEvent, result: str, msg: str) -> str:
        """Record the deploy's outcome; "" or, when the audit log can not take it, a sentence
        for the result saying so (the deploy's result matters more than its record)."""
        try:
            await self.outcome(j, intent, result, msg, {})
        except ReleaseError as exc:
            log.error("%s", exc)
            return f" (the audit log could not record the deploy's outcome: {exc.message})"
        return ""

    async def anchor(self) -> tuple[str, ...]:
        """Anchor the audit head in the git ref; a failure is a warning, never an error."""
        try:
            if self._anchor is not None:
                await self._anchor()
            else:
                from console.audit.anchor import advance_anchor

                store = self.svc.port("audit")
                await advance_anchor(self.svc.config.root, store, timeout=self.svc.timeout)
        except Exception as exc:
            log.warning("audit anchor not moved: %s", exc)
            return (f"the audit anchor was not moved: {describe(exc, 'audit anchor', 0)}",)
        return ()

    def result(
        self,
        ctx: Context,
        j: Journal,
        status: str,
        message: str,
        *,
        nxt: str = "",
        warnings: tuple[str, ...] = (),
    ) -> ActionResult:
        return ActionResult(
            action=ctx.op, status=status, message=message, model=ctx.model,
            version=ctx.version.version, stage=ctx.stage, gates=ctx.quality,
            events=tuple(j.written), next_command=nxt, warnings=warnings,
        )  # fmt: skip

    # -- reconciliation ------------------------------------------------------------------

    async def reconcile(self) -> list[Reconciled]:
        """Intents older than the grace period without an outcome: read the registry, record
        what is true (read-only mode only reports them)."""
        svc = self.svc
        store = svc.ws.get("audit")
        if store is None:
            return []
        try:
            count, _ = await asyncio.wait_for(store.head(), svc.timeout)
            events = await asyncio.wait_for(
                store.events(since_seq=max(0, count - RECONCILE_WINDOW)), svc.timeout
            )
        except Exception as exc:
            log.warning("reconcile: audit unreadable: %s", exc)
            return []
        closed = {
            int(e.details.get("intent_seq", 0) or 0) for e in events if e.action == rq.OUTCOME
        }
        now = svc.clock()
        open_ = [
            e for e in events
            if e.action == rq.INTENT and e.seq not in closed and now - e.at > svc.reconcile_grace
        ]  # fmt: skip
        out: list[Reconciled] = []
        j = svc.journal(svc.identity())
        for intent in open_:
            out.append(await self._reconcile_one(j, intent))
        return out

    async def _reconcile_one(self, j: Journal, intent: AuditEvent) -> Reconciled:
        svc, op = self.svc, str(intent.details.get("op", ""))
        model, stage, target = intent.model, intent.stage, intent.after
        result, msg = rq.UNKNOWN, ""
        if op == "deploy":
            msg = (
                f"the deploy of {model} {target} to {stage} (by {intent.actor}) never reported "
                f"back; check the deployment, then: "
                + command(svc, "promote", model, target, "--to", stage, "--reason", "finish deploy")
            )
        else:
            try:
                now = await current_assignment(
                    svc.port("registry"), model, stage, svc.timeout, svc.config
                )
                actual = now.version if now else None
            except (Unavailable, ReleaseError) as exc:
                return Reconciled(
                    intent_seq=intent.seq, op=op, model=model, stage=stage, version=target,
                    result=rq.UNKNOWN, message=f"still open: the registry can not be read ({exc})",
                )  # fmt: skip
            if actual == target:
                result = rq.EXECUTED
                msg = f"{stage} of {model} points at {target}: the {op} happened"
                if svc.ws.get("deploy") is not None:
                    msg += "; its deploy may not have run: " + command(
                        svc, "promote", model, target, "--to", stage, "--reason", "finish deploy"
                    )
            elif actual == (intent.before or None):
                result, msg = (
                    rq.FAILED,
                    f"{stage} of {model} still points at {actual or 'nothing'}: the {op} did not happen",
                )
            else:
                result, msg = (
                    rq.FAILED,
                    f"{stage} of {model} points at {actual or 'nothing'}, not {target}",
                )
        seq = None
        if not svc.read_only:
            try:
                ev = await j.write(
                    rq.OUTCOME, model=model, version=target, stage=stage, before=intent.before,
                    after=target, reason=f"reconciled: {msg}", result=result,
                    request_id=intent.request_id,
                    details={"op": op, "intent_seq": intent.seq, "reconciled": True},
                )  # fmt: skip
                seq = ev.seq
            except ReleaseError as exc:
                msg += f" (not recorded: {exc.message})"
        return Reconciled(
            intent_seq=intent.seq, op=op, model=model, stage=stage, version=target,
            result=result, message=msg, outcome_seq=seq,
        )  # fmt: skip
