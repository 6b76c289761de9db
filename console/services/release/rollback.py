"""Rollback: the fast path back to the stage's previous version, for incidents.

The previous version comes from the registry's own stage history. Gates are evaluated and
shown but never block; the rollback policy (default: no quorum, any release manager) decides
who may act, and whether the model name must be typed to confirm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from console.domain import ModelVersion, RegistryEvent, RegistryEventKind
from console.ports import NotFound
from console.services.release.context import Settings, need_audit, need_registry
from console.services.release.facts import Unavailable, call
from console.services.release.results import Refused, ReleaseError
from console.services.workspace import Workspace


def holders(history: Sequence[RegistryEvent], stage: str) -> list[str]:
    """The versions ``stage`` held, oldest first (a repeated assignment counted once)."""
    out: list[str] = []
    for ev in history:
        version = ev.version if ev.kind is RegistryEventKind.ASSIGN and ev.stage == stage else None
        if version and (not out or out[-1] != version):
            out.append(version)
    return out


def rolled_back_from(history: Sequence[RegistryEvent], stage: str) -> dict[str, str]:
    """Versions of ``stage`` whose latest time there ended in a rollback, per the registry's
    own record (a stage write whose message says it was a rollback, as the console and the
    demo write), with when and by whom. A move to a lower version is not a rollback by itself,
    and a version promoted again after its rollback starts afresh."""
    out: dict[str, str] = {}
    before: str | None = None
    for ev in history:
        if ev.kind is not RegistryEventKind.ASSIGN or ev.stage != stage or not ev.version:
            continue
        if before and before != ev.version and ev.message.strip().lower().startswith("rollback"):
            when = f" on {ev.at:%Y-%m-%d %H:%M} UTC" if ev.at else ""
            out[before] = f"rolled back{when} by {ev.actor or 'someone'}"
        out.pop(ev.version, None)
        before = ev.version
    return out


def pulled_from(history: Sequence[RegistryEvent], stage: str) -> dict[str, str]:
    """Versions whose last event in ``stage`` is an unassignment (``gto deprecate MODEL
    VERSION STAGE``): someone took them out of the stage on purpose; with when and by whom."""
    last: dict[str, RegistryEvent] = {}
    for ev in history:
        if ev.stage == stage and ev.version and ev.kind in _STAGE_MOVES:
            last[ev.version] = ev
    return {
        version: f"taken out of {stage}{f' on {ev.at:%Y-%m-%d %H:%M} UTC' if ev.at else ''} by "
        f"{ev.actor or 'someone'} (tag {ev.ref or 'unknown'})"
        for version, ev in last.items()
        if ev.kind is RegistryEventKind.UNASSIGN
    }


_STAGE_MOVES = (RegistryEventKind.ASSIGN, RegistryEventKind.UNASSIGN)


def previous_version(
    history: Sequence[RegistryEvent],
    stage: str,
    current: str | None,
    versions: Sequence[ModelVersion],
    rolled: Mapping[str, str] | None = None,
) -> str | None:
    """The version ``stage`` held before ``current`` (its previous holder), passing over one
    that is no longer registered or that was itself rolled back (``rolled``)."""
    return choose_target(history, stage, current, versions, rolled or {})[0]


def choose_target(
    history: Sequence[RegistryEvent],
    stage: str,
    current: str | None,
    versions: Sequence[ModelVersion],
    rolled: Mapping[str, str],
) -> tuple[str | None, list[str]]:
    """(the rollback target, why each newer previous holder was passed over)."""
    active = {v.version for v in versions if not v.deregistered}
    pulled = pulled_from(history, stage)  # never propose what someone took out on purpose
    passed: list[str] = []
    seen = {current}
    for version in reversed(holders(history, stage)):
        if version in seen:  # each earlier holder is judged (and named) once
            continue
        seen.add(version)
        if version not in active:
            passed.append(f"{version} is no longer registered")
        elif version in rolled:
            passed.append(f"{version} was itself {rolled[version]}")
        elif version in pulled:
            passed.append(f"{version} was {pulled[version]}")
        else:
            return version, passed
    return None, passed


async def _rolled_back_in_audit(
    ws: Workspace, s: Settings, model: str, stage: str
) -> dict[str, str]:
    """Versions of ``stage`` the audit log records a rollback away from ({} if unreadable)."""
    try:
        events = await call("audit", need_audit(ws).events(model=model), s.timeout, s.config)
    except (Unavailable, ReleaseError):
        return {}
    out: dict[str, str] = {}
    for ev in events:
        op = ev.details.get("op") if ev.action == "outcome" else ev.action
        if op not in ("promote", "rollback") or ev.result != "executed" or ev.stage != stage:
            continue
        if op == "rollback" and ev.before:
            reason = ev.reason if ev.action != "outcome" else ""
            out[ev.before] = f"rolled back on {ev.at:%Y-%m-%d %H:%M} UTC by {ev.actor}" + (
                f" ({reason[:80]})" if reason else ""
            )
        out.pop(ev.after, None)
    return out


async def _previous_from_audit(
    ws: Workspace,
    s: Settings,
    model: str,
    stage: str,
    current: str,
    versions: Sequence[ModelVersion],
) -> str | None:
    """What ``stage`` held before it moved to ``current``, per the newest executed move the
    audit log recorded (None when the log has none or can not be read)."""
    active = {v.version for v in versions if not v.deregistered}
    try:
        events = await call("audit", need_audit(ws).events(model=model), s.timeout, s.config)
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


async def rollback_target(
    ws: Workspace, s: Settings, model: str, stage: str, to_version: str | None
) -> tuple[str, list[str]]:
    """(the version to roll ``stage`` back to, why each newer previous holder was passed
    over): ``to_version``, else the previous holder per the registry's history, else per the
    audit log. Refused when there is nothing to roll back or no earlier version."""
    registry = need_registry(ws)
    try:
        history, versions, stages = (
            await call("registry", registry.history(model), s.timeout, s.config),
            await call("registry", registry.versions(model), s.timeout, s.config),
            await call("registry", registry.stages(model), s.timeout, s.config),
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
    passed: list[str] = []
    target = to_version
    if target is None:
        rolled = {
            **await _rolled_back_in_audit(ws, s, model, stage),
            **rolled_back_from(history, stage),
        }
        target, passed = choose_target(history, stage, current, versions, rolled)
    if target is None:  # registries without alias history (MLflow): the console's own record
        target = await _previous_from_audit(ws, s, model, stage, current, versions)
    if target is None:
        raise Refused(
            f"no earlier version of {model} was in {stage} (it holds {current}); "
            "name one with --to VERSION",
            kind="policy",
        )
    return target, passed
