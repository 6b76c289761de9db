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
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from console.config import ConsoleConfig
from console.domain import AuditEvent, RegistryEvent, RegistryEventKind, StageAssignment
from console.logs import excerpt
from console.ports import Conflict, NotFound, StageBusy
from console.services.release import request_fold as rq
from console.services.release.context import Reader, need_registry
from console.services.release.decisions import Context
from console.services.release.facts import Unavailable, call, current_assignment, describe
from console.services.release.gates import gate_doc
from console.services.release.journal import Anchoring, Journal
from console.services.release.liveness import this_process, writer_gone
from console.services.release.results import ActionResult, Reconciled, Refused, ReleaseError

log = logging.getLogger(__name__)
RECONCILE_WINDOW = 5000  # newest events scanned for open intents
CLOCK_SKEW = timedelta(minutes=5)  # between the host that wrote an intent and the registry's
LOCKING_OPS = (rq.PROMOTE, rq.ROLLBACK)


def intent_marker(intent: AuditEvent) -> str:
    """What the registry write of ``intent`` carries (in the tag message, the alias's record),
    so that reconciliation can tell from the registry's own history whether it happened."""
    return f"intent {intent.hash[:16]}"


def wrote_for(intent: AuditEvent, history: Sequence[RegistryEvent]) -> RegistryEvent | None:
    """The registry event that carried out ``intent``, if the history holds it."""
    marker, floor = intent_marker(intent), intent.at - CLOCK_SKEW
    for ev in reversed(history):
        if ev.kind is not RegistryEventKind.ASSIGN or ev.stage != intent.stage:
            continue
        if marker in ev.message:
            return ev
        if (  # an intent written before the marker existed: its request id, in its time
            intent.request_id
            and f"({intent.request_id})" in ev.message
            and "intent " not in ev.message
            and ev.version == intent.after
            and ev.at is not None
            and ev.at >= floor
        ):
            return ev
    return None


def command(config: ConsoleConfig, *args: str) -> str:
    """A copy-pasteable ``cd4ml-console`` command for this workspace."""
    where = ["--config", str(config.source)] if config.source else ["-w", str(config.root)]
    return shlex.join(["cd4ml-console", *where, *args])


class Executor:
    """Runs approved moves and deploys, and reconciles what a crash left open."""

    def __init__(
        self,
        reader: Reader,
        *,
        journal: Callable[[], Journal],
        anchoring: Callable[[], Anchoring],
    ) -> None:
        """``journal``: a journal for the current actor (reconciliation writes with it);
        ``anchoring``: the audit log's anchor, advanced after each action."""
        self.reader = reader
        self.ws = reader.ws
        self.s = reader.s
        self.journal = journal
        self.anchoring = anchoring

    # -- the move ------------------------------------------------------------------------

    async def execute(
        self, ctx: Context, view: rq.RequestView, j: Journal, reason: str
    ) -> ActionResult:
        """Move the stage pointer (CAS on what the approvers saw), then deploy and anchor."""
        s, registry = self.s, need_registry(self.ws)
        model, stage, target = ctx.model, ctx.stage, ctx.version.version
        expected, op = view.request.from_version, view.op
        now = await self.stage_now(model, stage)
        actual = now.version if now else None
        if actual == target:
            return self.result(ctx, j, "already", f"{stage} of {model} already points at {target}")
        if actual != expected:
            await self.refuse_moved(j, ctx, view, now, "as the approvers saw")
        await self.check_commit(ctx, view)
        intent = await self.take_stage(j, ctx, view, reason)
        message = (
            f"{op} {model} {target} to {stage} ({view.id}, {intent_marker(intent)}) "
            f"by {j.user}: {reason}"
        )
        extra = {"commit": ctx.version.commit} if getattr(registry, "checks_commit", False) else {}
        try:
            assigned = await asyncio.wait_for(
                registry.assign(
                    model, target, stage, actor=j.user, message=message, expected=expected, **extra
                ),
                s.write_timeout,
            )
        except Conflict as exc:
            who = f" by {exc.changed_by}" if exc.changed_by else ""
            msg = (
                f"nothing changed: {stage} of {model} moved to {exc.actual or 'something else'}"
                f"{who} while this request executed ({exc.message})"
            )
            await self.outcome(
                j,
                intent,
                rq.CONFLICT,
                msg,
                {"actual": exc.actual, "changed_by": exc.changed_by},
                moved=False,
            )
            await self.anchor()
            raise Refused(msg, kind="conflict", details={"actual": exc.actual}) from None
        except Exception as exc:
            moved = await self.read_back(ctx, j, intent, exc)
            if moved is not None:
                return moved
        else:
            await self.outcome(j, intent, rq.EXECUTED, f"{stage}: {expected} -> {target}", {})
            unpublished = getattr(registry, "unpublished", None)
            if callable(unpublished) and (note := await unpublished(assigned.ref)):
                j.notes.append(note)
        return await self.after_move(ctx, j, view.id, reason, expected, op)

    async def stage_now(self, model: str, stage: str) -> StageAssignment | None:
        s = self.s
        try:
            return await current_assignment(
                need_registry(self.ws), model, stage, s.timeout, s.config
            )
        except Unavailable as exc:
            raise ReleaseError(f"registry: {exc}; nothing was changed") from None

    async def refuse_moved(
        self,
        j: Journal,
        ctx: Context,
        view: rq.RequestView,
        now: StageAssignment | None,
        seen: str,
        why: str = "",
    ) -> NoReturn:
        """The stage is no longer where the request expects it: record and refuse."""
        model, stage, target = ctx.model, ctx.stage, ctx.version.version
        actual, expected = (now.version if now else None), view.request.from_version
        by = (
            f" (moved by {now.assigned_by} at {now.assigned_at:%Y-%m-%d %H:%M} UTC)"
            if (now and now.assigned_by and now.assigned_at)
            else ""
        )
        msg = (
            f"nothing changed: {stage} of {model} now points at {actual or 'nothing'}, not "
            f"{expected or 'nothing'} {seen}{by}{why}; review and request again"
        )
        await j.try_write(
            view.op,
            model=model,
            version=target,
            stage=stage,
            before=actual,
            after=target,
            reason=msg,
            result=rq.CONFLICT,
            request_id=view.id,
        )
        await self.anchor()
        raise Refused(msg, kind="conflict", details={"actual": actual, "expected": expected})

    async def check_commit(self, ctx: Context, view: rq.RequestView) -> None:
        """The version must still be registered at the commit the request named: a version
        tag re-created on another commit is a new release, not the one requested."""
        s, model, version = self.s, ctx.model, ctx.version.version
        try:
            versions = await call(
                "registry", need_registry(self.ws).versions(model), s.timeout, s.config
            )
        except Unavailable as exc:
            raise ReleaseError(f"registry: {exc}; nothing was changed") from None
        now = next((v.commit for v in versions if v.version == version), "")
        asked = view.commit or ctx.version.commit
        if now != asked:
            raise Refused(
                f"nothing changed: {model} {version} is now registered at commit "
                f"{now[:12] or 'none'}, not {asked[:12]} as requested in {view.id}; a "
                "re-registered version must be requested and approved again",
                kind="conflict",
                details={"requested_commit": asked, "commit": now},
            )

    def is_stale(self, intent: AuditEvent) -> bool:
        """Whether the writer of ``intent`` can no longer be writing: its process is gone
        (same host), or it is older than any write could still take."""
        if writer_gone(intent.details.get("process")):
            return True
        return self.s.clock() - intent.at > self.s.lock_stale

    async def take_stage(
        self, j: Journal, ctx: Context, view: rq.RequestView, reason: str
    ) -> AuditEvent:
        """Write the intent, taking the per-stage lock in the audit store. A lock left by a
        writer that is gone is reconciled first; one still held refuses, naming the holder."""
        fields: dict[str, Any] = dict(
            model=ctx.model,
            version=ctx.version.version,
            stage=ctx.stage,
            before=view.request.from_version,
            after=ctx.version.version,
            reason=reason,
            result="pending",
            request_id=view.id,
            details={
                "op": view.op,
                "expected": view.request.from_version,
                "target": ctx.version.version,
                "commit": ctx.version.commit,
                "evidence_hash": ctx.evidence,
                "approvals": [c.approval.actor for c in ctx.checks if c.counts],
                "gates": [gate_doc(q) for q in ctx.quality],
                "lock": True,
                "process": this_process(),
            },
        )
        try:
            return await j.write(rq.INTENT, **fields)
        except StageBusy as busy:
            if not self.is_stale(busy.intent):
                raise await self.busy(j, ctx, view, busy) from None
            holder = busy.intent
        done = await self.reconcile_one(j, holder)
        j.notes.append(reconciled_note(done))
        now = await self.stage_now(ctx.model, ctx.stage)
        if (now.version if now else None) != view.request.from_version:
            await self.refuse_moved(
                j,
                ctx,
                view,
                now,
                "as the approvers saw",
                f" (intent seq {holder.seq}, left open by {holder.actor}, was reconciled: "
                f"{done.result})",
            )
        try:
            return await j.write(rq.INTENT, **fields)
        except StageBusy as again:
            raise await self.busy(j, ctx, view, again) from None

    async def busy(
        self, j: Journal, ctx: Context, view: rq.RequestView, busy: StageBusy
    ) -> Refused:
        """Another writer holds the stage: record the attempt, and say who and since when."""
        age = max(0, int((self.s.clock() - busy.intent.at).total_seconds()))
        wait = max(0, int(self.s.lock_stale.total_seconds()) - age)
        msg = (
            f"nothing changed: {busy.message}, {age}s ago; wait for it to finish (if that "
            f"console stopped, its intent is reconciled in {wait}s, or at once on its host)"
        )
        await j.try_write(
            view.op,
            model=ctx.model,
            version=ctx.version.version,
            stage=ctx.stage,
            before=view.request.from_version,
            after=ctx.version.version,
            reason=msg,
            result=rq.CONFLICT,
            request_id=view.id,
            details={"holder": busy.intent.actor, "intent_seq": busy.intent.seq},
        )
        return Refused(
            msg,
            kind="conflict",
            details={"holder": busy.intent.actor, "intent_seq": busy.intent.seq},
        )

    async def read_back(
        self, ctx: Context, j: Journal, intent: AuditEvent, exc: BaseException
    ) -> ActionResult | None:
        """After a failed or timed-out move, record what the registry says is true.
        Returns None when the move did happen (the caller goes on to deploy)."""
        s, model, stage, target = self.s, ctx.model, ctx.stage, ctx.version.version
        why = describe(exc, "registry", s.write_timeout, s.config)
        expected = intent.before or None
        unsynced = await self.reader.sync_registry(strict=False)  # the remote may have taken it
        try:
            if unsynced:
                raise Unavailable(f"the registry's remote could not be fetched: {unsynced}")
            now = await current_assignment(
                need_registry(self.ws), model, stage, s.timeout, s.config
            )
        except Unavailable as err:
            msg = (
                f"the outcome is unknown: moving {stage} of {model} to {target} failed ({why}) "
                f"and reading it back failed too ({err}). Nothing is retried; check with "
                f"`{command(s.config, 'status', model)}` — intent seq {intent.seq} is reconciled on "
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
                rq.OUTCOME,
                model=intent.model,
                version=intent.version,
                stage=intent.stage,
                before=intent.before,
                after=intent.after,
                reason=reason,
                result=result,
                request_id=intent.request_id,
                details={"op": op, "intent_seq": intent.seq, **details},
            )
        except ReleaseError as exc:
            done = (
                f"{intent.stage} of {intent.model} now points at {intent.after}"
                if moved and result == rq.EXECUTED
                else "nothing changed"
            )
            raise ReleaseError(
                f"{done}, but the audit log could not record the outcome "
                f"({exc.why or exc.message}); intent seq {intent.seq} is reconciled by the "
                "next action on this model"
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
                    rq.CANCEL,
                    model=model,
                    version=r.version,
                    stage=stage,
                    request_id=other.id,
                    reason=f"superseded: {stage} moved to {version} ({request_id})",
                    result="cancelled",
                )
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
        s = self.s
        deployer = self.ws.deploy
        if deployer is None:
            return "executed", "", ""
        retry = command(
            s.config,
            "promote",
            model,
            version,
            "--to",
            stage,
            "--reason",
            f"finish deploy of {request_id}",
        )
        revert = (
            command(
                s.config, "rollback", model, "--stage", stage, "--to", before, "--reason", "REASON"
            )
            if before
            else ""
        )
        finish = f"finish it with: {retry}" + (f"  — or revert it with: {revert}" if revert else "")
        try:
            intent = await j.write(
                rq.INTENT,
                model=model,
                version=version,
                stage=stage,
                before=before,
                after=version,
                reason=reason,
                result="pending",
                request_id=request_id,
                details={"op": "deploy", "deployer": getattr(deployer, "name", "")},
            )
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
            why = describe(exc, "deploy", limit, s.config)
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
            await self.anchoring().advance()
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
            action=ctx.op,
            status=status,
            message=message,
            model=ctx.model,
            version=ctx.version.version,
            stage=ctx.stage,
            gates=ctx.quality,
            events=tuple(j.written),
            next_command=nxt,
            warnings=(*ctx.notices, *j.notes, *warnings),
        )

    # -- reconciliation ------------------------------------------------------------------

    async def reconcile(self) -> list[Reconciled]:
        """Intents without an outcome whose writer can no longer be writing: read the
        registry, record what is true (read-only mode only reports them)."""
        s = self.s
        store = self.ws.audit
        if store is None:
            return []
        try:
            count, _ = await asyncio.wait_for(store.head(), s.timeout)
            events = await asyncio.wait_for(
                store.events(since_seq=max(0, count - RECONCILE_WINDOW)), s.timeout
            )
        except Exception as exc:
            log.warning("reconcile: audit unreadable: %s", exc)
            return []
        closed = {
            int(e.details.get("intent_seq", 0) or 0) for e in events if e.action == rq.OUTCOME
        }
        open_ = [e for e in events if e.action == rq.INTENT and e.seq not in closed]
        due = [e for e in open_ if self.due(e)]
        if not due:
            return []
        j = self.journal()
        out = [await self.reconcile_one(j, intent) for intent in due]
        if j.written:
            await self.anchor()
        return out

    async def open_intent_notices(self, model: str, *, settle: bool) -> list[str]:
        """Every open (locking) intent of ``model``, named; with ``settle``, those whose writer
        is gone are reconciled first (their outcome is recorded from the registry's truth)."""
        s, store = self.s, self.ws.audit
        lister = getattr(store, "open_intents", None)
        if not callable(lister):
            return []
        try:
            opened = await call("audit", lister(model=model), s.timeout, s.config)
        except Unavailable as exc:
            return [f"the open intents of {model} can not be read: {exc}"]
        out: list[str] = []
        j: Journal | None = None
        for intent in opened:
            stale = self.is_stale(intent)
            if settle and stale and not s.read_only:
                j = j or self.journal()
                out.append(reconciled_note(await self.reconcile_one(j, intent)))
                continue
            age = int((s.clock() - intent.at).total_seconds())
            op = intent.details.get("op", "move")
            out.append(
                f"intent seq {intent.seq} ({op} {model} {intent.after or 'nothing'} to "
                f"{intent.stage} by {intent.actor}, {max(age, 0)}s ago) has no outcome yet: "
                + (
                    "its console is gone; the next action reconciles it"
                    if stale
                    else "it may still be running"
                )
            )
        if j is not None and j.written:
            await self.anchor()
        return out

    def due(self, intent: AuditEvent) -> bool:
        """A move's intent once its writer is gone; a deploy's after the grace period (a
        deploy may take minutes)."""
        if intent.details.get("op") in LOCKING_OPS:
            return self.is_stale(intent)
        return self.s.clock() - intent.at > self.s.reconcile_grace

    async def judge(self, intent: AuditEvent) -> tuple[str, str]:
        """(result, why) of an intent's move, from the registry's own history first."""
        s, op = self.s, str(intent.details.get("op", ""))
        model, stage, target = intent.model, intent.stage, intent.after
        registry = need_registry(self.ws)
        await self.reader.sync_registry()
        history = await call("registry", registry.history(model), s.timeout, s.config)
        now = await current_assignment(registry, model, stage, s.timeout, s.config)
        actual = now.version if now else None
        since = f"; {stage} has since moved to {actual or 'nothing'}" if actual != target else ""
        ev = wrote_for(intent, history)
        if ev is not None:
            when = f" at {ev.at:%Y-%m-%d %H:%M:%S} UTC" if ev.at else ""
            return rq.EXECUTED, (
                f"the registry recorded the {op} ({ev.ref or 'its write'} by "
                f"{ev.actor or 'unknown'}{when}): {stage} of {model} moved to {target}{since}"
            )
        if actual == target:
            return rq.EXECUTED, f"{stage} of {model} points at {target}: the {op} happened"
        if getattr(registry, "history_complete", False):
            return rq.FAILED, (
                f"the registry holds no write for this intent: the {op} of {model} {target} "
                f"to {stage} did not happen ({stage} points at {actual or 'nothing'})"
            )
        if actual == (intent.before or None):
            return rq.FAILED, (
                f"{stage} of {model} still points at {actual or 'nothing'}: the {op} did not happen"
            )
        return rq.UNKNOWN, (
            f"{stage} of {model} points at {actual or 'nothing'}, neither {target} nor "
            f"{intent.before or 'nothing'}, and the registry keeps no history of its moves: "
            f"whether the {op} happened can not be told; check {model} by hand"
        )

    async def reconcile_one(self, j: Journal, intent: AuditEvent) -> Reconciled:
        """Record the outcome of one open intent (its lock is released by the record)."""
        s, op = self.s, str(intent.details.get("op", ""))
        model, stage, target = intent.model, intent.stage, intent.after
        if op == "deploy":
            result, msg = (
                rq.UNKNOWN,
                (
                    f"the deploy of {model} {target} to {stage} (by {intent.actor}) never reported "
                    f"back; check the deployment, then: "
                    + command(
                        s.config,
                        "promote",
                        model,
                        target,
                        "--to",
                        stage,
                        "--reason",
                        "finish deploy",
                    )
                ),
            )
        else:
            try:
                result, msg = await self.judge(intent)
            except (Unavailable, ReleaseError, NotFound) as exc:
                return Reconciled(
                    intent_seq=intent.seq,
                    op=op,
                    model=model,
                    stage=stage,
                    version=target,
                    result=rq.UNKNOWN,
                    message=f"still open: the registry can not be read ({exc})",
                )
            if result == rq.EXECUTED and self.ws.deploy is not None:
                msg += "; its deploy may not have run: " + command(
                    s.config, "promote", model, target, "--to", stage, "--reason", "finish deploy"
                )
        seq = None
        if not s.read_only:
            try:
                ev = await j.write(
                    rq.OUTCOME,
                    model=model,
                    version=target,
                    stage=stage,
                    before=intent.before,
                    after=target,
                    reason=f"reconciled: {msg}",
                    result=result,
                    request_id=intent.request_id,
                    details={"op": op, "intent_seq": intent.seq, "reconciled": True},
                )
                seq = ev.seq
            except ReleaseError as exc:
                msg += f" (not recorded: {exc.message})"
        return Reconciled(
            intent_seq=intent.seq,
            op=op,
            model=model,
            stage=stage,
            version=target,
            result=result,
            message=msg,
            outcome_seq=seq,
        )


def reconciled_note(r: Reconciled) -> str:
    return (
        f"intent seq {r.intent_seq} ({r.op} {r.model} {r.version} to {r.stage}) had no "
        f"outcome and was reconciled: {r.result} — {r.message}"
    )
