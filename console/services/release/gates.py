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

from console.config.model import ChangeWindow, LiveGateConfig, MetricBound, MetricSpec, StagePolicy
from console.domain import CIRun, GateResult, LiveWindow
from console.services.health import (
    count_text,
    ms_text,
    rate_text,
    shadow_comparison,
    span_text,
)
from console.services.incidents import RolledBack, applies_to

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUALITY_PREFIXES = ("metric:", "ci", "schema", "live:", "rolled_back")
# Live figures move with every scrape: the evidence hash binds their verdict, not the number.
VOLATILE_PREFIXES = ("live:",)


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
    live: LiveFacts | None = None  # read only when the stage policy has live gates
    rolled_back: RolledBack | None = None  # the version's newest rollback, if any
    rolled_back_error: str = ""  # the audit log could not be read for it


@dataclass(frozen=True)
class LiveFacts:
    """The candidate's live figures where it serves (shadow/canary) and those of the target
    stage's version, over the same window."""

    source_stage: str | None
    window_seconds: float
    candidate: LiveWindow | None = None
    candidate_error: str = ""
    production: LiveWindow | None = None
    production_error: str = ""


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


def rolled_back_gate(
    facts: GateFacts, stages: Sequence[str], *, acknowledged: bool
) -> GateResult | None:
    """A version once rolled back from the target stage (or a stage before it) returns only
    with an explicit acknowledgement; None when it never was rolled back."""
    if facts.rolled_back_error:
        return GateResult(
            gate="rolled_back",
            passed=False,
            detail=f"rollback history unknown: {facts.rolled_back_error}",
            threshold="ack",
        )
    rec = facts.rolled_back
    if rec is None:
        return None
    said = f"{facts.version} was {rec.sentence()}"
    at = f"{rec.at:%Y-%m-%d %H:%M}" if rec.at else "yes"
    if not applies_to(rec, facts.stage, stages):
        return GateResult(
            gate="rolled_back",
            passed=True,
            blocking=False,
            observed=at,
            threshold="ack",
            detail=f"{said}; {facts.stage} comes before {rec.stage}: no acknowledgement needed",
        )
    if acknowledged:
        return GateResult(
            gate="rolled_back",
            passed=True,
            observed=at,
            threshold="ack",
            detail=f"{said}; promoting it again acknowledged",
        )
    return GateResult(
        gate="rolled_back",
        passed=False,
        observed=at,
        threshold="ack",
        detail=f"{said}; promoting it again needs --ack-rolled-back",
    )


def _live_unknown(names: Sequence[str], spec: LiveGateConfig, why: str) -> list[GateResult]:
    """Every configured live gate, failed: nothing proves the figures (fail closed)."""
    return [
        GateResult(gate=name, passed=False, detail=f"unknown: {why}", threshold=threshold)
        for name, threshold in _live_limits(spec)
        if name in names
    ]


def _live_limits(spec: LiveGateConfig) -> list[tuple[str, float]]:
    limits = [
        ("live:p95_ms:max", spec.max_p95_ms),
        ("live:error_rate:max", spec.max_error_rate),
        ("live:p95_ms:regression", spec.max_p95_regression_ms),
        ("live:error_rate:regression", spec.max_error_rate_regression),
        ("live:disagreement:max", spec.max_disagreement),
        ("live:psi:max", spec.max_psi),
    ]
    return [(name, float(limit)) for name, limit in limits if limit is not None]


def live_gates(spec: LiveGateConfig, facts: GateFacts, now: datetime) -> list[GateResult]:
    """The candidate's live figures over the window: enough requests, within bounds, not worse
    than the target stage's version by more than the margins, agreeing with it on mirrored
    traffic. Whatever can not be read or is too thin fails (never passes on "unknown")."""
    live = facts.live
    names = [name for name, _ in _live_limits(spec)]
    where = f"{facts.version} in {live.source_stage if live and live.source_stage else '?'}"
    cand = live.candidate if live is not None else None
    if live is None or cand is None:
        why = live.candidate_error if live is not None else "the live figures were not read"
        need = GateResult(
            gate="live:requests",
            passed=False,
            detail=f"unknown: {where}: {why}",
            threshold=float(spec.min_requests),
        )
        return [need, *_live_unknown(names, spec, f"no live figures of {where}")]
    if (
        cand.observed_at is not None
        and (now - cand.observed_at).total_seconds() > live.window_seconds
    ):
        why = f"the newest figures of {where} are {span_text((now - cand.observed_at).total_seconds())} old"
        need = GateResult(
            gate="live:requests",
            passed=False,
            detail=f"unknown: {why}",
            threshold=float(spec.min_requests),
        )
        return [need, *_live_unknown(names, spec, why)]
    n = cand.requests or 0.0
    span = span_text(cand.seconds or live.window_seconds)
    enough = n >= spec.min_requests
    need = GateResult(
        gate="live:requests",
        passed=enough,
        observed=n,
        threshold=float(spec.min_requests),
        detail=f"{count_text(n)} requests to {where} in {span} "
        f"({'≥' if enough else '<'} {spec.min_requests:,} needed)",
    )
    if not enough:
        return [need, *_live_unknown(names, spec, f"only {count_text(n)} requests to {where}")]
    return [need, *(_live_gate(name, limit, facts, cand) for name, limit in _live_limits(spec))]


def _live_gate(name: str, limit: float, facts: GateFacts, cand: LiveWindow) -> GateResult:
    live = facts.live
    assert live is not None
    where = f"{facts.version} in {live.source_stage}"
    base = live.production
    base_where = f"{facts.base_version or 'nothing'} in {facts.stage}"
    if name == "live:p95_ms:max":
        return _bound(name, cand.latency_p95_ms, limit, f"p95 of {where}", ms_text)
    if name == "live:error_rate:max":
        return _bound(name, cand.error_rate, limit, f"error rate of {where}", rate_text)
    if name in ("live:p95_ms:regression", "live:error_rate:regression"):
        latency = name.startswith("live:p95")
        text = ms_text if latency else rate_text
        pick: Callable[[LiveWindow], float | None] = (
            (lambda w: w.latency_p95_ms) if latency else (lambda w: w.error_rate)
        )
        mine = pick(cand)
        theirs = pick(base) if base is not None and (base.requests or 0) > 0 else None
        if mine is None or theirs is None:
            why = (
                live.production_error
                if base is None and live.production_error
                else (
                    f"no {'p95' if latency else 'error rate'} figures of "
                    f"{where if mine is None else base_where}"
                )
            )
            return GateResult(gate=name, passed=False, detail=f"unknown: {why}", threshold=limit)
        worse = round(mine - theirs, 12)
        sign = "+" if worse >= 0 else "\u2212"
        ok = worse <= limit
        what = "p95" if latency else "error rate"
        return GateResult(
            gate=name,
            passed=ok,
            observed=worse,
            threshold=limit,
            detail=f"{what} {text(mine)} vs {text(theirs)} ({base_where}): {sign}{text(abs(worse))}"
            f"; allowed +{text(limit)}",
        )
    if name == "live:disagreement:max":
        shadow = cand.shadow
        if shadow is None or shadow.disagreement is None:
            why = f"no shadow decisions of {where}: is {facts.stage} traffic mirrored to it?"
            return GateResult(gate=name, passed=False, detail=f"unknown: {why}", threshold=limit)
        share = shadow.disagreement
        ok = share <= limit
        return GateResult(
            gate=name,
            passed=ok,
            observed=share,
            threshold=limit,
            detail=f"decision differs from {shadow.baseline_version or facts.base_version} on "
            f"{rate_text(share)} of {count_text(shadow.compared)} mirrored requests "
            f"({'≤' if ok else '>'} {rate_text(limit)})",
        )
    comparison = shadow_comparison(cand, base)
    if comparison.psi is None:
        why = f"no score histograms of both {where} and {base_where}"
        return GateResult(gate=name, passed=False, detail=f"unknown: {why}", threshold=limit)
    ok = comparison.psi <= limit
    return GateResult(
        gate=name,
        passed=ok,
        observed=round(comparison.psi, 4),
        threshold=limit,
        detail=f"score distribution shift vs {base_where}: PSI {comparison.psi:.3f} "
        f"({'≤' if ok else '>'} {limit:g}) over {count_text(comparison.candidate_scores)} scores",
    )


def _bound(
    name: str, value: float | None, limit: float, what: str, text: Callable[[float], str]
) -> GateResult:
    if value is None:
        return GateResult(gate=name, passed=False, detail=f"unknown: no {what}", threshold=limit)
    ok = value <= limit
    return GateResult(
        gate=name,
        passed=ok,
        observed=value,
        threshold=limit,
        detail=f"{what} {text(value)} {'≤' if ok else '>'} maximum {text(limit)}",
    )


def quality_gates(
    policy: StagePolicy,
    facts: GateFacts,
    spec: Callable[[str], MetricSpec],
    *,
    ack_schema_change: bool = False,
    ack_rolled_back: bool = False,
    stages: Sequence[str] = (),
    now: datetime | None = None,
) -> tuple[GateResult, ...]:
    """The gates of ``policy`` that judge the version itself, in a stable order. Live gates
    need ``facts.live`` (read for promotions only) and ``now``."""
    out: list[GateResult] = []
    for bound in policy.metric_bounds:
        if not bound.models or facts.model in bound.models:
            out.extend(metric_gates(bound, facts, spec))
    if policy.require_ci_success:
        out.append(ci_gate(facts))
    if policy.schema_change_needs_ack:
        out.append(schema_gate(facts, acknowledged=ack_schema_change))
    if policy.rolled_back_needs_ack:
        gate = rolled_back_gate(facts, stages or (facts.stage,), acknowledged=ack_rolled_back)
        if gate is not None:
            out.append(gate)
    if policy.live is not None and facts.live is not None and now is not None:
        out.extend(live_gates(policy.live, facts, now))
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
            [g.gate, g.passed, _evidence_value(g), g.threshold]
            for g in gates
            if g.gate.startswith(QUALITY_PREFIXES)
        ],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _evidence_value(g: GateResult) -> float | str | None:
    return None if g.gate.startswith(VOLATILE_PREFIXES) else g.observed


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
        return f"{num(obs)} vs {num(limit)}"
    if g.gate.endswith(":regression"):
        if obs < 0:
            return f"{num(-obs)} better"
        if obs == 0:
            return "unchanged"
        return f"{num(obs)} worse {'≤' if obs <= limit else '>'} {num(limit)}"
    if g.gate.endswith(":min") or g.gate == "live:requests":
        return f"{num(obs)} {'≥' if obs >= limit else '<'} {num(limit)}"
    if g.gate.endswith(":max"):
        return f"{num(obs)} {'≤' if obs <= limit else '>'} {num(limit)}"
    if g.gate == "approvals":
        return f"{num(obs)} of {num(limit)}" if limit else ""
    return f"{num(obs)} vs {num(limit)}"


def num(value: float | str | None) -> str:
    """A figure as plans and the CLI print it: counts with separators, else 4 digits."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 10_000:  # a count: 102,728, not 1.027e+05
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def gate_doc(g: GateResult) -> dict[str, Any]:
    """A gate result as plain data (audit details, JSON output)."""
    return g.model_dump(mode="json")
