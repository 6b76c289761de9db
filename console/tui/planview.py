"""What the release dialogs say: the plan (move, deploy, gates, approvals, audit steps), the
outcome of an action, and a refusal, as Rich renderables. Pure functions of service results.

Pass and fail are carried by a word and a glyph as well as colour (NO_COLOR reads the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from console.services.release.gates import gate_numbers, not_applicable
from console.tui import format as fmt
from console.tui.palette import Palette

if TYPE_CHECKING:
    from console.config import ConsoleConfig
    from console.domain import GateResult, PromotionRequest
    from console.services.release import ActionResult, Plan

OK_STATUSES = ("requested", "pending", "approved", "executed", "already", "rejected", "cancelled")


def gate_mark(gate: GateResult) -> tuple[str, str]:
    """(glyph and word, palette style name) for one GateResult."""
    if not_applicable(gate):
        return "\u2013 n/a", "muted"
    if gate.passed:
        return "✓ pass", "ok"
    if gate.gate == "approvals":
        return "… wait", "warn"
    if not gate.blocking:
        return "! warn", "warn"
    return "✗ FAIL", "err"


def gate_table(gates: Sequence[GateResult], pal: Palette) -> Table:
    """One row per gate: verdict word, gate, observed vs threshold, and the sentence."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True, width=6)
    table.add_column(no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column(no_wrap=True, max_width=22, overflow="ellipsis")
    table.add_column(ratio=1)
    for g in gates:
        word, style = gate_mark(g)
        numbers = gate_numbers(g)
        table.add_row(
            Text(word, style=getattr(pal, style)),
            Text(g.gate, style=pal.bold),
            Text(numbers),
            Text(g.detail, style=pal.muted),
        )
    return table


def heading(text: str, pal: Palette) -> Text:
    return Text(text.upper(), style=pal.heading)


def move_text(plan: Plan, pal: Palette, prod_stage: str) -> Text:
    """'production of fraud-detector: v1.3.0 → v2.0.0 (commit 516186e0)'."""
    text = Text()
    text.append(f"{plan.stage}", style=pal.stage(plan.stage, prod_stage))
    text.append(f" of {plan.model}: ", style=pal.muted)
    text.append(plan.from_version or "nothing", style=pal.muted if not plan.from_version else "")
    text.append(" → ")
    text.append(plan.version, style=pal.bold)
    if plan.commit:
        text.append(f"  (commit {plan.commit[:8]})", style=pal.muted)
    if plan.already:
        text.append(f"\n{plan.stage} already points at {plan.version}", style=pal.warn)
    return text


def approvals_block(plan: Plan, pal: Palette) -> list[RenderableType]:
    """Quorum, then each approval and why it does or does not count."""
    have, need = plan.quorum
    out: list[RenderableType] = []
    line = Text(f"{have} of {need} approval(s) counted", style=pal.bold if need else pal.muted)
    if not need:
        line = Text("no approvals required", style=pal.muted)
    out.append(line)
    for a in plan.approvals:
        row = Text("  ")
        row.append(
            "✓ counts " if a.counts else "✗ does not count ", style=pal.ok if a.counts else pal.warn
        )
        row.append(f"{a.actor} ({a.role.replace('_', ' ')})")
        if a.at:
            row.append(f" at {a.at[:16].replace('T', ' ')}", style=pal.muted)
        if a.comment:
            row.append(f" \u201c{a.comment}\u201d", style=pal.muted)
        if a.why:
            row.append(f" \u2014 {a.why}", style=pal.warn)
        out.append(row)
    return out


def steps_block(plan: Plan, pal: Palette) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", style=pal.muted, no_wrap=True)
    table.add_column(ratio=1)
    for i, step in enumerate(plan.steps, 1):
        table.add_row(f"{i}.", Text(step))
    return table


def plan_preview(
    plan: Plan,
    pal: Palette,
    prod_stage: str,
    *,
    request: PromotionRequest | None = None,
    gates_note: str = "",
    actor: bool = True,
) -> Group:
    """The preview a person confirms: the move, who acts, the deploy, gates, approvals, the
    audit events to be written, and what still blocks it."""
    parts: list[RenderableType] = [heading("move", pal), move_text(plan, pal, prod_stage)]
    # e.g. which earlier holder a rollback passes over, a move of this model still open
    parts += [Text(f"\u2022 {n}", style=pal.warn) for n in getattr(plan, "notices", ())]
    if actor:
        who = Text(f"acting as {plan.actor} ({plan.role.replace('_', ' ')})", style=pal.muted)
        parts.append(who)
    if plan.request_id:
        req = Text()
        req.append(f"request {plan.request_id}", style=pal.bold)
        if plan.requested_by:
            req.append(f" by {plan.requested_by}")
        if request is not None:
            req.append(f" {fmt.when(request.created_at)}", style=pal.muted)
            if request.reason:
                req.append(f"\nreason: \u201c{request.reason}\u201d")
        parts.append(req)
    parts += [Text(""), heading("deploy", pal), Text(plan.deploy)]
    parts += [Text(""), heading("gates", pal)]
    if gates_note:
        parts.append(Text(gates_note, style=pal.muted))
    parts.append(gate_table(plan.gates, pal) if plan.gates else Text("none", style=pal.muted))
    parts += [Text(""), heading("approvals", pal), *approvals_block(plan, pal)]
    parts += [Text(""), heading("audit events and changes, in order", pal), steps_block(plan, pal)]
    if plan.blockers:
        parts += [Text(""), heading("waiting for / blocked by", pal)]
        parts += [Text(f"  \u2022 {b}", style=pal.warn) for b in plan.blockers]
    return Group(*parts)


def who_may_approve(plan: Plan, config: ConsoleConfig) -> str:
    """'dev, erin (release manager or admin), or anyone not named in [roles]; not alice (asked
    for it), nor an author of v2.0.0': who may approve the plan's request, from the roles."""
    from console.identity import is_same_person

    policy = config.policy
    if plan.op == "rollback":
        allowed = list(policy.rollback_for(plan.stage).roles)
    else:
        allowed = list(policy.for_stage(plan.stage).approver_roles)
    roles = config.roles
    out: list[str] = []
    for role in allowed:
        for user in getattr(roles, role, []) or []:
            if user in out or user == plan.requested_by:
                continue
            if is_same_person(user, plan.authors, roles) is None:
                out.append(user)
    kinds = " or ".join(r.replace("_", " ") for r in allowed)
    text = f"{', '.join(out) or 'no one named'} ({kinds})"
    if roles.default in allowed:
        text += ", or anyone not named in [roles]"
    if plan.requested_by:
        text += f"; not {plan.requested_by} (asked for it)"
    if plan.authors:
        text += f", nor an author of {plan.version}"
    return text


def quality_failures(plan: Plan) -> list[GateResult]:
    """Blocking gates that failed, apart from approvals and the change window (which make a
    request wait rather than refuse it)."""
    return [
        g
        for g in plan.gates
        if not g.passed and g.blocking and g.gate not in ("approvals", "window")
    ]


def schema_gate(plan: Plan) -> GateResult | None:
    """The schema gate when it fails for want of an acknowledgement."""
    return next(
        (g for g in plan.gates if g.gate == "schema" and not g.passed and g.threshold == "ack"),
        None,
    )


def rolled_back_gate(plan: Plan) -> GateResult | None:
    """The rolled-back gate when it fails for want of an acknowledgement."""
    return next(
        (
            g
            for g in plan.gates
            if g.gate == "rolled_back" and not g.passed and g.threshold == "ack" and g.observed
        ),
        None,
    )


def result_text(result: ActionResult, pal: Palette) -> Text:
    """An ActionResult in words: status, message, what to run next, warnings."""
    ok = result.status in OK_STATUSES
    text = Text()
    text.append(
        ("✓ " if ok else "✗ ") + result.status.replace("_", " "), style=pal.ok if ok else pal.err
    )
    text.append(f": {result.message}")
    if result.events:
        text.append(
            f"\naudit events written: {', '.join(str(s) for s in result.events)}", style=pal.muted
        )
    if result.next_command:
        text.append(f"\nnext: {result.next_command}", style=pal.accent)
    for w in result.warnings:
        text.append(f"\nwarning: {w}", style=pal.warn)
    return text


REFUSAL_WORDS = {
    "read_only": "read-only",
    "role": "role",
    "four_eyes": "four-eyes",
    "policy": "policy",
    "conflict": "conflict",
    "usage": "incomplete",
    "not_found": "not found",
}


def error_text(exc: BaseException, pal: Palette) -> Text:
    """A refusal (nothing changed) or a backend failure, in words."""
    from console.services.release import Refused, ReleaseError

    text = Text()
    if isinstance(exc, Refused):
        text.append(f"✗ refused ({REFUSAL_WORDS.get(exc.kind, exc.kind)})", style=pal.err)
        text.append(f": {exc.message}")
        text.append("\nnothing was changed", style=pal.muted)
    elif isinstance(exc, ReleaseError):
        text.append("✗ failed", style=pal.err)
        text.append(f": {exc.message}")
        if exc.next_command:
            text.append(f"\nnext: {exc.next_command}", style=pal.accent)
    else:
        text.append("✗ unexpected error", style=pal.err)
        text.append(f": {type(exc).__name__}: {exc} (details in the log file)")
    return text
