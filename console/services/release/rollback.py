"""Rollback: the fast path back to the stage's previous version, for incidents.

The previous version comes from the registry's own stage history. Gates are evaluated and
shown but never block; the rollback policy (default: no quorum, any release manager) decides
who may act, and whether the model name must be typed to confirm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from console.domain import ModelVersion, RegistryEvent, RegistryEventKind, version_key
from console.ports import NotFound
from console.services.release import requests as rq
from console.services.release.actions import advance, finish_deploy, open_request
from console.services.release.facts import Unavailable, call
from console.services.release.results import ActionResult, Plan, Refused, ReleaseError

if TYPE_CHECKING:
    from console.services.release.service import Context, ReleaseService


def rolled_back_from(history: Sequence[RegistryEvent], stage: str) -> set[str]:
    """Versions ``stage`` was moved away from to an older version: someone rolled them back."""
    out: set[str] = set()
    before: str | None = None
    for ev in history:
        if ev.kind is not RegistryEventKind.ASSIGN or ev.stage != stage or not ev.version:
            continue
        if before is not None and version_key(ev.version) < version_key(before):
            out.add(before)
        before = ev.version
    return out


def pulled_from(history: Sequence[RegistryEvent], stage: str) -> set[str]:
    """Versions whose last event in ``stage`` is an unassignment (``gto deprecate MODEL
    VERSION STAGE``): someone took them out of the stage on purpose."""
    last: dict[str, RegistryEventKind] = {}
    for ev in history:
        if ev.stage == stage and ev.version and ev.kind in _STAGE_MOVES:
            last[ev.version] = ev.kind
    return {v for v, kind in last.items() if kind is RegistryEventKind.UNASSIGN}


_STAGE_MOVES = (RegistryEventKind.ASSIGN, RegistryEventKind.UNASSIGN)


def previous_version(
    history: Sequence[RegistryEvent],
    stage: str,
    current: str | None,
    versions: Sequence[ModelVersion],
) -> str | None:
    """The newest version assigned to ``stage`` before ``current`` that is still registered and
    was neither rolled back nor pulled from the stage on purpose (proposing what someone took
    out, or the version of the last incident, helps nobody)."""
    active = {v.version for v in versions if not v.deregistered}
    bad = rolled_back_from(history, stage) | pulled_from(history, stage)
    for ev in reversed(history):
        if (
            ev.kind is RegistryEventKind.ASSIGN
            and ev.stage == stage
            and ev.version
            and ev.version != current
            and ev.version in active
            and ev.version not in bad
        ):
            return ev.version
    return None


async def _previous_from_audit(
    svc: ReleaseService, model: str, stage: str, current: str, versions: Sequence[ModelVersion]
) -> str | None:
    """What ``stage`` held before it moved to ``current``, per the newest executed move the
    audit log recorded (None when the log has none or can not be read)."""
    active = {v.version for v in versions if not v.deregistered}
    try:
        events = await call("audit", svc.port("audit").events(model=model), svc.timeout, svc.config)
    except (Unavailable, ReleaseError):
        return None
    for ev in reversed(events):
        if (
            ev.stage == stage
            and ev.result == "executed"
            and ev.after == current
            and ev.before
            and ev.before != current
            and ev.before in active
            and ev.details.get("op") != "rollback"  # never propose what was rolled away from
        ):
            return ev.before
    return None


async def _resolve(
    svc: ReleaseService, model: str, stage: str | None, to_version: str | None
) -> Context:
    stage = stage or svc.config.prod_stage
    svc.check_stage(stage)
    registry = svc.port("registry")
    try:
        history, versions, stages = (
            await call("registry", registry.history(model), svc.timeout, svc.config),
            await call("registry", registry.versions(model), svc.timeout, svc.config),
            await call("registry", registry.stages(model), svc.timeout, svc.config),
        )
    except NotFound as exc:
        raise Refused(str(exc), kind="not_found") from None
    except Unavailable as exc:
        raise ReleaseError(f"registry: {exc}; nothing was changed") from None
    current = next((a.version for a in stages if a.stage == stage), None)
    if current is None:
        raise Refused(
            f"nothing to roll back: {stage} of {model} points at no version", kind="policy"
        )
    target = to_version or previous_version(history, stage, current, versions)
    if target is None:  # registries without alias history (MLflow): the console's own record
        target = await _previous_from_audit(svc, model, stage, current, versions)
    if target is None:
        raise Refused(
            f"no earlier version of {model} was in {stage} (it holds {current}); "
            "name one with --to VERSION",
            kind="policy",
        )
    return await svc.context(model, target, stage, op=rq.ROLLBACK)


async def plan_rollback(
    svc: ReleaseService, model: str, *, stage: str | None = None, to_version: str | None = None
) -> Plan:
    """What a rollback would do now: from, to, gates (shown, not blocking), confirmation."""
    ctx = await _resolve(svc, model, stage, to_version)
    confirm = svc.config.policy.rollback_for(ctx.stage).confirm_model_name
    return svc.build_plan(ctx, svc.identity(), confirm_name=confirm)


async def rollback(
    svc: ReleaseService,
    model: str,
    *,
    reason: str,
    confirmation: str,
    stage: str | None = None,
    to_version: str | None = None,
) -> ActionResult:
    """Roll ``stage`` back (to ``to_version`` or the previous version): reason and typed
    confirmation required by policy; executes at once unless the policy wants approvals."""
    stage_name = stage or svc.config.prod_stage
    policy = svc.config.policy.rollback_for(stage_name)
    actor, _ = await svc.admit("rollback", model, to_version or "", stage_name, tuple(policy.roles))
    if not reason.strip():
        raise Refused("rollback needs a reason (--reason TEXT)", kind="usage")
    if policy.confirm_model_name and confirmation != model:
        raise Refused(
            f"rollback not confirmed: type the model name {model!r} to confirm", kind="usage"
        )
    ctx = await _resolve(svc, model, stage_name, to_version)
    j = svc.journal(actor)
    if ctx.target.current == ctx.version.version:
        return await finish_deploy(svc, ctx, j, reason.strip())
    await open_request(svc, ctx, j, reason.strip())
    await svc.refresh(ctx)
    return await advance(svc, ctx, actor, j, reason.strip(), action=rq.ROLLBACK, created=True)
