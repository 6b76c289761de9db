"""Building the Context a release decision rests on: the registry fetched and read, the gate
facts gathered, the requests folded from the audit log (expiry applied), the gates evaluated.

Every read has a timeout; a port that does not answer is a ReleaseError ("nothing was
changed") or, for what a gate judges, a reason the gate fails closed on (facts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from console.config import ConsoleConfig
from console.domain import RequestState
from console.domain.versions import other_spelling
from console.ports import AuditStore, Deprecated, ModelRegistry, NotFound
from console.services.release import gates as g
from console.services.release import request_fold as rq
from console.services.release.decisions import Context, approval_rule, judge_approvals
from console.services.release.facts import (
    Unavailable,
    describe,
    gather_facts,
    read_target,
    with_live_and_incident,
)
from console.services.release.results import Refused, ReleaseError
from console.services.workspace import Workspace


@dataclass(frozen=True)
class Settings:
    """The limits and clock of one release service, as they are when an action starts."""

    config: ConsoleConfig
    clock: Callable[[], datetime]
    timeout: float  # one read
    write_timeout: float  # one write (a registry move, an audit append)
    read_only: bool
    lock_stale: timedelta  # an intent older than this can no longer be in its registry write
    reconcile_grace: timedelta  # a deploy's intent older than this is reconciled


def need_registry(ws: Workspace) -> ModelRegistry:
    """The registry; ReleaseError saying why when there is none."""
    if ws.registry is None:
        raise ReleaseError(f"registry: {_missing(ws, 'registry')}; nothing was changed")
    return ws.registry


def need_audit(ws: Workspace) -> AuditStore:
    """The audit store; ReleaseError saying why when there is none."""
    if ws.audit is None:
        raise ReleaseError(f"audit: {_missing(ws, 'audit')}; nothing was changed")
    return ws.audit


def _missing(ws: Workspace, kind: str) -> str:
    return ws.problems.get(kind) or f"no {kind} backend is configured"


class Reader:
    """Reads what decisions need from one workspace; ``requests`` keeps the request folds
    between reads (it belongs to the service, which outlives a Reader)."""

    def __init__(self, ws: Workspace, settings: Settings, requests: rq.RequestLog) -> None:
        self.ws = ws
        self.s = settings
        self.requests = requests

    # -- the registry's shared state --------------------------------------------------------

    async def sync_registry(self, *, strict: bool = True) -> str:
        """Bring the registry's local view up to date with its shared truth (a GTO workspace's
        git remote) before a decision. ``strict``: ReleaseError when that fails (an action
        refuses); else the reason in words (a preview shows it)."""
        sync = getattr(need_registry(self.ws), "sync", None)
        if not callable(sync):
            return ""
        s = self.s
        try:
            await asyncio.wait_for(sync(), s.write_timeout)
        except Exception as exc:
            why = describe(exc, "registry", s.write_timeout, s.config)
            if strict:
                raise ReleaseError(
                    f"refused: the registry's shared state could not be fetched ({why}); a "
                    "release decision needs it, so nothing was changed"
                ) from None
            return why
        return ""

    async def check_registry(self, model: str, stage: str) -> None:
        """Refuse what the registry itself would refuse (a stage its own config does not
        allow, a deprecated model) before anything is recorded, not after the request."""
        check = getattr(need_registry(self.ws), "check_move", None)
        if check is None:
            return
        try:
            await asyncio.wait_for(check(model, stage), self.s.timeout)
        except NotFound as exc:
            raise Refused(str(exc), kind="not_found") from None
        except Deprecated as exc:
            raise Refused(str(exc), kind="policy") from None
        except Exception as exc:
            why = describe(exc, "registry", self.s.timeout, self.s.config)
            raise ReleaseError(f"registry: {why}; nothing was changed") from None

    # -- the requests -----------------------------------------------------------------------

    async def folded(
        self, model: str | None
    ) -> tuple[dict[str, rq.RequestView], list[rq.RequestView]]:
        """(every request of ``model`` by id, those still pending), expiry applied. The fold
        is kept and extended by what was appended since the last read (rq.RequestLog)."""
        store, config = need_audit(self.ws), self.s.config
        try:
            views, open_ids = await self.requests.read(store, model, self.s.timeout)
        except Unavailable as exc:
            raise ReleaseError(f"audit: {exc}; nothing was changed") from None
        now = self.s.clock()
        ttl: dict[str, float] = {}
        pending: list[rq.RequestView] = []
        for rid in open_ids:
            view, stage = views[rid], views[rid].request.stage
            if stage not in ttl:
                ttl[stage] = config.policy.for_stage(stage).request_ttl_hours
            view = views[rid] = rq.expired_copy(view, now, ttl[stage])
            if view.state is RequestState.PENDING:
                pending.append(view)
        return views, pending

    async def refresh(self, ctx: Context) -> Context:
        """``ctx`` with its requests folded again (after events were written); facts as read."""
        views, open_ = await self.folded(ctx.model)
        pending = rq.pending_for(
            open_, ctx.model, ctx.version.version, ctx.stage, rollback=ctx.op == rq.ROLLBACK
        )
        ctx = replace(ctx, views=views, open=tuple(open_), pending=pending)
        return judge_approvals(ctx, self.s.clock())

    # -- the context ------------------------------------------------------------------------

    async def read(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        op: str | None,
        ack: bool,
        ack_rolled_back: bool,
        notices: tuple[str, ...],
        unsynced: str,
    ) -> Context:
        """Read the registry, facts and requests a decision needs; evaluate quality gates.
        ``op`` None: whichever kind of request is pending (approve, reject)."""
        s, config = self.s, self.s.config
        try:
            target = await read_target(need_registry(self.ws), model, stage, s.timeout, config)
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
        rollback = None if op is None else op == rq.ROLLBACK
        pending = rq.pending_for(open_, model, version, stage, rollback=rollback)
        if op is None:
            op = pending.op if pending is not None else rq.PROMOTE
        ack = ack or bool(pending and pending.ack_schema_change)
        ack_rb = ack_rolled_back or bool(
            pending and pending.events and pending.events[0].details.get("ack_rolled_back")
        )
        facts, authors, unknown = await gather_facts(self.ws, model, mv, stage, base, s.timeout)
        facts = await with_live_and_incident(self.ws, facts, s.timeout, live=op != rq.ROLLBACK)
        policy = config.policy.for_stage(stage)
        quality = g.quality_gates(
            policy,
            facts,
            config.metric_spec,
            ack_schema_change=ack,
            ack_rolled_back=ack_rb,
            stages=config.stages,
            now=s.clock(),
        )
        if op == rq.ROLLBACK:  # shown, never blocking: rollbacks happen during incidents
            quality = tuple(q.model_copy(update={"blocking": False}) for q in quality)
        evidence = g.evidence_hash(model, version, stage, mv.commit, target.current, quality)
        required, approvers = approval_rule(config.policy, policy, op, stage)
        ctx = Context(
            op=op,
            model=model,
            stage=stage,
            policy=policy,
            target=target,
            version=mv,
            base=base,
            quality=quality,
            evidence=evidence,
            authors=authors,
            authors_unknown=unknown,
            views=views,
            open=tuple(open_),
            pending=pending,
            ack=ack,
            roles=config.roles,
            required=required,
            approvers=approvers,
            notices=notices,
            sync_problem=unsynced,
            ack_rolled_back=ack_rb,
            incident=facts.rolled_back,
        )
        return judge_approvals(ctx, s.clock())
