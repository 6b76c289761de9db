"""JSON documents and plain-text lines for the release CLI (docs/release.md). JSON keys are
only ever added, never renamed."""

from __future__ import annotations

from typing import Any

from console.domain import AuditEvent, GateResult
from console.services.release.compare import Comparison
from console.services.release.gates import gate_numbers, not_applicable, num
from console.services.release.results import ActionResult, Plan, Reconciled, Refused

ACTION_SCHEMA = "cd4ml-console/release-action/v1"


def gate_docs(gates: tuple[GateResult, ...] | list[GateResult]) -> list[dict[str, Any]]:
    return [g.model_dump(mode="json") for g in gates]


def plan_doc(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    doc = plan.model_dump(mode="json")
    doc["quorum"] = list(plan.quorum)
    return doc


def reconciled_docs(items: list[Reconciled]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in items]


def action_doc(result: ActionResult, reconciled: list[Reconciled]) -> dict[str, Any]:
    """An action's result as JSON (exit code included so scripts need not map statuses)."""
    return {
        "schema": ACTION_SCHEMA,
        "action": result.action,
        "status": result.status,
        "exit_code": result.exit_code,
        "message": result.message,
        "model": result.model,
        "version": result.version or None,
        "stage": result.stage or None,
        "request": result.request,
        "gates": gate_docs(result.gates),
        "plan": plan_doc(result.plan),
        "events": list(result.events),
        "next_command": result.next_command or None,
        "warnings": list(result.warnings),
        "reconciled": reconciled_docs(reconciled),
    }


def refusal_doc(
    action: str, model: str, exc: Refused | None, message: str, reconciled: list[Reconciled]
) -> dict[str, Any]:
    """A refusal (exit 3/2) or a failure (exit 1) as JSON."""
    status = "refused" if exc is not None else "failed"
    return {
        "schema": ACTION_SCHEMA,
        "action": action,
        "status": status,
        "exit_code": exc.exit_code if exc is not None else 1,
        "kind": exc.kind if exc is not None else "backend",
        "message": message,
        "model": model,
        "gates": gate_docs(exc.gates) if exc is not None else [],
        "reconciled": reconciled_docs(reconciled),
    }


def event_doc(e: AuditEvent) -> dict[str, Any]:
    return e.model_dump(mode="json")


# -- text ------------------------------------------------------------------------------------


def gate_lines(gates: tuple[GateResult, ...] | list[GateResult]) -> list[str]:
    """One line per gate: mark, name, observed vs threshold, detail."""
    out = []
    for g in gates:
        mark = (
            "n/a "
            if not_applicable(g)
            else "ok  "
            if g.passed
            else "wait"
            if g.gate == "approvals"
            else "FAIL"
            if g.blocking
            else "warn"
        )
        nums = gate_numbers(g)
        out.append(f"  {mark} {g.gate:<26} {nums:<22} {g.detail}")
    return out


def plan_lines(plan: Plan) -> list[str]:
    """The preview a person confirms: the move, deploy, gates, approvals, audit steps."""
    out = [
        f"{plan.op} {plan.model}: {plan.stage} {plan.from_version or 'nothing'} -> {plan.version}"
        + (f"  (commit {plan.commit[:8]})" if plan.commit else ""),
        f"  as {plan.actor} ({plan.role.replace('_', ' ')})"
        + (f"; request {plan.request_id} by {plan.requested_by}" if plan.request_id else ""),
        f"  deploy: {plan.deploy}",
        "gates:",
        *gate_lines(plan.gates),
    ]
    have, need = plan.quorum
    if need or plan.approvals:
        out.append(f"approvals: {have} of {need}")
        for a in plan.approvals:
            out.append(f"  {'ok ' if a.counts else 'no '} {a.actor} ({a.role}) {a.why}".rstrip())
    out.append("steps:")
    out += [f"  {i}. {s}" for i, s in enumerate(plan.steps, 1)]
    if plan.blockers:
        out.append("waiting for / blocked by:")
        out += [f"  - {b}" for b in plan.blockers]
    if plan.may_request:
        out.append(f"you may not request this: {plan.may_request}")
    out += [f"note: {n}" for n in plan.notices]
    return out


def result_lines(result: ActionResult) -> list[str]:
    out = [result.message]
    if result.status in ("requested", "pending") and result.gates:
        out += ["gates:", *gate_lines(result.gates)]
    if result.next_command:
        out.append(f"next: {result.next_command}")
    out += [f"warning: {w}" for w in result.warnings]
    return out


def live_lines(c: Comparison) -> list[str]:
    """LIVE: each side over the SLO window where it serves, its verdict, the shadow figures."""
    out = [f"live over the last {round(c.live_window)}s (where each version serves):"]
    sides = [c.live_base, *(c.live.get(x.version) for x in c.candidates)]
    for s in sides:
        if s is None:
            continue
        f = s.figures
        if f is None:
            out.append(f"  {s.version or '-':<10} {s.error}")
            continue
        p95 = f"{f.latency_p95_ms:.0f}ms" if f.latency_p95_ms is not None else "-"
        rate = f"{f.error_rate * 100:.2f}%" if f.error_rate is not None else "-"
        line = (
            f"  {s.version or '-':<10} {s.stage:<11} {s.verdict:<9} p95 {p95:<7} errors {rate:<7}"
            f" requests {round(f.requests or 0):,}"
        )
        sh = s.shadow
        if sh is not None and sh.disagreement is not None:
            line += f"  decision differs {sh.disagreement * 100:.1f}% of {round(sh.compared):,}"
        if sh is not None and sh.psi is not None:
            line += f"  PSI {sh.psi:.2f}"
        out.append(line)
    for version, rec in sorted(c.rolled_back.items()):
        out.append(f"  ↩ {version} was {rec.sentence()}")
    return out


def comparison_lines(c: Comparison) -> list[str]:
    """Metric deltas per candidate (arrows say better/worse, never colour alone), axes, trend."""
    out = [f"{c.model}: candidates vs {c.base_version or 'nothing'} in {c.stage}"]
    head = f"  {'metric':<18} {'base':>10}" + "".join(f" {x.version:>20}" for x in c.candidates)
    out.append(head)
    for name in c.metric_names:
        row = f"  {name:<18}"
        base = next(
            (
                m.base
                for x in c.candidates
                for m in x.metrics
                if m.name == name and m.base is not None
            ),
            None,
        )
        row += f" {num(base):>10}"
        for x in c.candidates:
            m = next((m for m in x.metrics if m.name == name), None)
            if m is None or m.value is None:
                row += f" {'—':>20}"
                continue
            mark = {True: "better", False: "worse", None: "same"}[m.better]
            delta = f"{m.delta:+.4g}" if m.delta is not None else ""
            row += f" {f'{num(m.value)} {delta} {mark}':>20}"
        out.append(row)
    for x in c.candidates:
        lin = x.lineage
        out.append(f"{x.version} (by {x.created_by or '—'}, CI {x.ci}):")
        if lin.code is not None:
            stat = lin.code.diffstat
            diff = f"{stat.files} files +{stat.insertions} -{stat.deletions}" if stat else ""
            if lin.code.behind:  # an older commit than the base's
                lacks = f" (it lacks {diff})" if diff else ""
                out.append(f"  code:     {len(lin.code.behind)} commits behind {c.stage}{lacks}")
            else:
                out.append(
                    f"  code:     {len(lin.code.commits)} commits by "
                    f"{', '.join(lin.code.authors) or '—'}{', ' + diff if diff else ''}"
                )
        params = ", ".join(
            f"{p.key} {num(p.before)}->{num(p.after)}" for p in lin.model_axis.params
        )
        out.append(f"  model:    {params or 'no parameter change'}")
        schema = lin.schema_axis
        if schema is not None and schema.declared:
            changes = ", ".join(f"{f.kind.value} {f.name}" for f in schema.changes) or "no change"
            out.append(f"  schema:   {changes}")
        s = lin.sampling
        if s is not None:
            rows = f", rows {num(s.rows_before)}->{num(s.rows_after)}" if s.rows_after else ""
            out.append(f"  sampling: {'changed' if s.changed else 'same'}{rows}")
    out += live_lines(c)
    if c.trend and c.metric_names:
        out.append("trend (oldest first):")
        for name in c.metric_names[:4]:
            values = " ".join(num(t.metrics.get(name)) for t in c.trend[-12:])
            out.append(f"  {name:<18} {values}")
    out += [f"! {k}: {v}" for k, v in c.errors.items()]
    return out
