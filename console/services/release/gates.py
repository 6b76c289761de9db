"""Quality gates (policy as code): pure functions from facts and a StagePolicy to GateResults.

Quality gates (metrics, CI, schema) decide whether a version is fit for a stage; their results
make the *evidence* whose hash approvals are bound to. Process gates (change window, approvals)
depend on the clock and on people, so they are evaluated at execution time and never hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from console.config.model import ChangeWindow, MetricBound, MetricSpec, StagePolicy
from console.domain import CIRun, GateResult

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUALITY_PREFIXES = ("metric:", "ci", "schema")


@dataclass(frozen=True)
class SchemaChange:
    """One field added/removed/changed, as the schema gate reports it."""

    name: str
    kind: str


@dataclass(frozen=True)
class GateFacts:
    """Everything the quality gates look at for one candidate and one target stage."""

    model: str
    version: str
    stage: str
    commit: str = ""
    base_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    base_metrics: dict[str, float] = field(default_factory=dict)
    ci_runs: tuple[CIRun, ...] = ()
    ci_error: str = ""  # the CI backend could not answer (or is not configured)
    schema_changes: tuple[SchemaChange, ...] = ()
    schema_error: str = ""
    metrics_error: str = ""


def _fmt(value: float | None, spec: MetricSpec | None = None) -> str:
    if value is None:
        return "—"
    try:
        text = (spec.format if spec else "{:.4g}").format(value)
    except (ValueError, IndexError, KeyError):
        text = f"{value:.4g}"
    return f"{text} {spec.unit}".rstrip() if spec and spec.unit else text


def metric_gates(
    bound: MetricBound, facts: GateFacts, spec: Callable[[str], MetricSpec]
) -> list[GateResult]:
    """Absolute bounds and the regression limit of one metric (direction-aware)."""
    name, s = bound.metric, spec(bound.metric)
    value = facts.metrics.get(name)
    out: list[GateResult] = []
    if value is None:
        if facts.metrics and not facts.metrics_error and name not in facts.base_metrics:
            base = f" nor {facts.base_version}" if facts.base_version else ""
            detail = (
                f"n/a: {name} is not recorded by {facts.version}{base}; the bound does not apply"
            )
            return [GateResult(gate=f"metric:{name}", passed=True, detail=detail, blocking=False)]
        why = facts.metrics_error or f"{facts.version} records no metric {name!r}"
        if name in facts.base_metrics and not facts.metrics_error:
            why += f" ({facts.base_version} in {facts.stage} does)"
        return [GateResult(gate=f"metric:{name}", passed=False, detail=why, threshold=None)]
    if bound.min is not None:
        ok = value >= bound.min
        out.append(
            GateResult(
                gate=f"metric:{name}:min",
                passed=ok,
                detail=f"{name} {_fmt(value, s)} {'≥' if ok else '<'} minimum {_fmt(bound.min, s)}",
                observed=value,
                threshold=bound.min,
            )
        )
    if bound.max is not None:
        ok = value <= bound.max
        out.append(
            GateResult(
                gate=f"metric:{name}:max",
                passed=ok,
                detail=f"{name} {_fmt(value, s)} {'≤' if ok else '>'} maximum {_fmt(bound.max, s)}",
                observed=value,
                threshold=bound.max,
            )
        )
    if bound.max_regression is not None:
        out.append(_regression(bound, value, facts, s))
    return out


def _regression(bound: MetricBound, value: float, facts: GateFacts, s: MetricSpec) -> GateResult:
    name, gate = bound.metric, f"metric:{bound.metric}:regression"
    base = facts.base_metrics.get(name)
    if facts.base_version is None or base is None:
        where = (
            f"{facts.stage} is empty"
            if facts.base_version is None
            else f"{facts.base_version} in {facts.stage} records no {name}"
        )
        return GateResult(
            gate=gate,
            passed=True,
            detail=f"{name}: nothing to compare with ({where})",
            threshold=bound.max_regression,
        )
    # Positive = worse, whichever way the metric points.
    worse = (base - value) if s.direction == "higher" else (value - base)
    worse = round(worse, 12)
    ok = worse <= bound.max_regression  # type: ignore[operator]
    if worse > 0:
        change = f"{_fmt(worse, s)} worse"
    elif worse < 0:
        change = f"{_fmt(-worse, s)} better"
    else:
        change = "unchanged"
    return GateResult(
        gate=gate,
        passed=ok,
        detail=(
            f"{name} {_fmt(value, s)} vs {_fmt(base, s)} ({facts.base_version} in {facts.stage}): "
            f"{change}; allowed regression {_fmt(bound.max_regression, s)}"
        ),
        observed=worse,
        threshold=bound.max_regression,
    )


def ci_state(runs: Sequence[CIRun]) -> str:
    """success / failure / running / none from the newest run of each pipeline."""
    if not runs:
        return "none"
    newest: dict[str, CIRun] = {}
    for run in sorted(runs, key=_run_order, reverse=True):
        newest.setdefault(run.pipeline, run)
    if any(r.status.value != "completed" for r in newest.values()):
        return "running"
    return "success" if all(r.succeeded for r in newest.values()) else "failure"


def _run_order(run: CIRun) -> tuple[str, str]:
    at = run.finished_at or run.started_at
    return (at.isoformat() if at else "", run.id)


def ci_gate(facts: GateFacts) -> GateResult:
    """CI must have succeeded on the version's commit."""
    short = facts.commit[:8] or "(no commit)"
    if facts.ci_error:
        return GateResult(
            gate="ci", passed=False, detail=f"CI unknown: {facts.ci_error}", threshold="success"
        )
    state = ci_state(facts.ci_runs)
    failed = sorted({r.pipeline for r in facts.ci_runs if not r.succeeded})
    detail = {
        "success": f"CI succeeded on {short}",
        "none": f"no CI run for commit {short}",
        "running": f"CI still running on {short}",
        "failure": f"CI failed on {short} ({', '.join(failed)})",
    }[state]
    return GateResult(
        gate="ci", passed=state == "success", detail=detail, observed=state, threshold="success"
    )


def schema_gate(facts: GateFacts, *, acknowledged: bool) -> GateResult:
    """A schema change against the stage's version needs an explicit acknowledgement."""
    if facts.schema_error:
        return GateResult(
            gate="schema",
            passed=False,
            detail=f"schema unknown: {facts.schema_error}",
            threshold="ack",
        )
    n = len(facts.schema_changes)
    if n == 0:
        return GateResult(
            gate="schema", passed=True, detail="no schema change", observed=0, threshold="ack"
        )
    summary = ", ".join(f"{c.kind} {c.name}" for c in facts.schema_changes[:6])
    if n > 6:
        summary += f", … ({n - 6} more)"
    base = facts.base_version or "nothing"
    if acknowledged:
        detail = f"schema change vs {base} acknowledged: {summary}"
    else:  # in words both the CLI (--ack-schema-change) and the TUI (a checkbox) can follow
        detail = f"schema change vs {base} needs an acknowledgement: {summary}"
    return GateResult(
        gate="schema", passed=acknowledged, detail=detail, observed=n, threshold="ack"
    )


def quality_gates(
    policy: StagePolicy,
    facts: GateFacts,
    spec: Callable[[str], MetricSpec],
    *,
    ack_schema_change: bool = False,
) -> tuple[GateResult, ...]:
    """The gates of ``policy`` that judge the version itself, in a stable order."""
    out: list[GateResult] = []
    for bound in policy.metric_bounds:
        if not bound.models or facts.model in bound.models:
            out.extend(metric_gates(bound, facts, spec))
    if policy.require_ci_success:
        out.append(ci_gate(facts))
    if policy.schema_change_needs_ack:
        out.append(schema_gate(facts, acknowledged=ack_schema_change))
    return tuple(out)


# -- change windows -----------------------------------------------------------------------


def in_window(window: ChangeWindow, now: datetime) -> bool:
    """Whether ``now`` (aware) falls on one of the window's days and hours, in its timezone."""
    local = now.astimezone(ZoneInfo(window.timezone))
    hour = local.hour + local.minute / 60 + local.second / 3600
    if DAYS[local.weekday()] not in window.days:
        return False
    if window.start_hour < window.end_hour:
        return window.start_hour <= hour < window.end_hour
    return hour >= window.start_hour or hour < window.end_hour  # wraps past midnight


def describe_window(window: ChangeWindow) -> str:
    days = ",".join(window.days) if window.days else "no days"
    word = "deny" if window.deny else "allow"
    return f"{word} {days} {window.start_hour:02d}-{window.end_hour:02d} {window.timezone}"


def window_gate(
    windows: Sequence[ChangeWindow], now: datetime, *, overridden_by: str = ""
) -> GateResult:
    """Inside at least one allow window (when any exist) and inside no deny window."""
    if not windows:
        return GateResult(gate="window", passed=True, detail="no change windows configured")
    allow = [w for w in windows if not w.deny]
    deny = [w for w in windows if w.deny]
    tz = (allow or deny)[0].timezone
    local = now.astimezone(ZoneInfo(tz))
    observed = f"{DAYS[local.weekday()]} {local:%H:%M} {tz}"
    threshold = "; ".join(describe_window(w) for w in windows)
    hit_deny = next((w for w in deny if in_window(w, now)), None)
    ok_allow = not allow or any(in_window(w, now) for w in allow)
    if hit_deny is None and ok_allow:
        return GateResult(
            gate="window",
            passed=True,
            detail=f"{observed} is inside the change window",
            observed=observed,
            threshold=threshold,
        )
    why = (
        f"{observed} is inside a denied window ({describe_window(hit_deny)})"
        if hit_deny
        else f"{observed} is outside the change windows ({threshold})"
    )
    if overridden_by:
        return GateResult(
            gate="window",
            passed=True,
            detail=f"{why}; overridden by admin {overridden_by}",
            observed=observed,
            threshold=threshold,
        )
    return GateResult(
        gate="window", passed=False, detail=why, observed=observed, threshold=threshold
    )


def approvals_gate(
    required: int, approvers: Sequence[str], roles: Sequence[str], allowed: Iterable[str]
) -> GateResult:
    """Quorum: ``required`` distinct eligible approvers, each in an allowed role."""
    allowed = list(allowed)
    got = len(approvers)
    if required == 0:
        detail = "no approvals required"
    else:
        who = ", ".join(f"{a} ({r})" for a, r in zip(approvers, roles, strict=True)) or "none yet"
        noun = "approval" if required == 1 else "approvals"
        detail = f"{got} of {required} {noun}: {who}; may approve: {', '.join(allowed)}"
    return GateResult(
        gate="approvals",
        passed=got >= required,
        detail=detail,
        observed=float(got),
        threshold=float(required),
    )


# -- evidence ------------------------------------------------------------------------------


def blocking_failures(gates: Iterable[GateResult]) -> list[GateResult]:
    return [g for g in gates if g.blocking and not g.passed]


def evidence_hash(
    model: str,
    version: str,
    stage: str,
    commit: str,
    expected: str | None,
    gates: Sequence[GateResult],
) -> str:
    """SHA-256 over what approvers see: the move and every quality gate with its numbers."""
    doc: dict[str, Any] = {
        "model": model,
        "version": version,
        "stage": stage,
        "commit": commit,
        "expected": expected,
        "gates": [
            [g.gate, g.passed, g.observed, g.threshold]
            for g in gates
            if g.gate.startswith(QUALITY_PREFIXES)
        ],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def not_applicable(g: GateResult) -> bool:
    """A bound on a metric neither version records: it passes without judging anything, so
    it reads "n/a", never "pass"."""
    return g.passed and not g.blocking and g.gate.startswith("metric:") and g.gate.count(":") == 1


def gate_numbers(g: GateResult) -> str:
    """Observed against threshold, in words a person reads at a glance: '0.012 better' for a
    regression gate whose number is negative (an improvement), '51 > 50' for a bound."""
    if not_applicable(g) or g.threshold is None:
        return ""
    obs, limit = g.observed, g.threshold
    if not isinstance(obs, int | float) or not isinstance(limit, int | float):
        return f"{_num(obs)} vs {_num(limit)}"
    if g.gate.endswith(":regression"):
        if obs < 0:
            return f"{_num(-obs)} better"
        if obs == 0:
            return "unchanged"
        return f"{_num(obs)} worse {'≤' if obs <= limit else '>'} {_num(limit)}"
    if g.gate.endswith(":min"):
        return f"{_num(obs)} {'≥' if obs >= limit else '<'} {_num(limit)}"
    if g.gate.endswith(":max"):
        return f"{_num(obs)} {'≤' if obs <= limit else '>'} {_num(limit)}"
    if g.gate == "approvals":
        return f"{_num(obs)} of {_num(limit)}" if limit else ""
    return f"{_num(obs)} vs {_num(limit)}"


def _num(value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def gate_doc(g: GateResult) -> dict[str, Any]:
    """A gate result as plain data (audit details, JSON output)."""
    return g.model_dump(mode="json")
