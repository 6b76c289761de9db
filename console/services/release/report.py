"""The evidence report: one Markdown record of a release for a change board — what moved, who
requested and approved it, the gates with their numbers, the four axes, CI, and the audit
hashes with the anchor that pins them."""

from __future__ import annotations

import os
import secrets
import stat
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.domain import AuditEvent, GateResult
from console.domain.text import escape_controls
from console.logs import cut, mask
from console.services.release import request_fold as rq
from console.services.release.compare import Candidate, compare
from console.services.release.results import Plan

if TYPE_CHECKING:
    from console.services.release.service import ReleaseService


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


class ReportFileError(Exception):
    """The report can not be written where asked; ``str()`` says why and what to do."""


def _refuse_target(path: Path) -> None:
    """Refuse a target that is a symbolic link, not a regular file, or another user's file:
    ``report -o`` may run as root or in a shared folder, and must never write through a link
    someone planted, nor replace someone else's file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ReportFileError(
            f"{path} is a symbolic link; refusing to write through it: remove it or choose "
            "another file"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ReportFileError(f"{path} exists and is not a regular file; choose another file")
    if st.st_uid != os.getuid():
        raise ReportFileError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); refusing to "
            "replace it: choose another file"
        )


def write_report(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a new file beside it, then renamed over it):
    never through a symbolic link, never over another user's file, never half-written."""
    _refuse_target(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
    except OSError as exc:
        raise ReportFileError(f"can not write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _refuse_target(path)  # checked again: the rename replaces a link, never follows it
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ReportFileError(f"can not write {path}: {exc.strerror}") from None
        raise


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _iso(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def _gates(gates: list[GateResult] | tuple[GateResult, ...]) -> list[str]:
    rows = [
        [
            g.gate,
            "pass"
            if g.passed
            else "waiting"
            if g.gate == "approvals"
            else "FAIL"
            if g.blocking
            else "fail (not blocking)",
            g.observed,
            g.threshold,
            g.detail,
        ]
        for g in gates
    ]
    return _table(["gate", "result", "observed", "threshold", "detail"], rows)


def _recorded_gates(view: rq.RequestView) -> tuple[str, list[GateResult]]:
    """The gates as recorded at execution (intent) or request time."""
    for ev in reversed(view.events):
        if ev.action in (rq.INTENT, rq.REQUEST) and ev.details.get("gates"):
            when = "executed" if ev.action == rq.INTENT else "requested"
            gates = [GateResult.model_validate(g) for g in ev.details["gates"]]
            return f"as evaluated when {when} (audit seq {ev.seq})", gates
    return "", []


def _axes(cand: Candidate) -> list[str]:
    lin = cand.lineage
    out = [f"### Four axes vs {lin.base_version or 'nothing'}", ""]
    code = lin.code
    if code is not None:
        stat = code.diffstat
        out.append(
            f"- **Code**: {len(code.commits)} commit(s)"
            + (" (truncated)" if code.truncated else "")
            + f" by {', '.join(code.authors) or '—'}"
            + (f"; {stat.files} files, +{stat.insertions} -{stat.deletions}" if stat else "")
        )
        out += [f"  - `{c.short}` {c.subject} ({c.author})" for c in code.commits[:20]]
    params = lin.model_axis.params
    out.append(f"- **Model**: {len(params)} parameter change(s)")
    out += [f"  - `{p.key}`: {_cell(p.before)} → {_cell(p.after)} ({p.kind.value})" for p in params]
    deltas = [m for m in lin.model_axis.metrics if m.value is not None or m.base is not None]
    if deltas:
        out += [
            "",
            *_table(
                ["metric", "candidate", "base", "delta", "better is", "verdict"],
                [
                    [
                        m.name,
                        m.value,
                        m.base,
                        m.delta,
                        m.direction,
                        {True: "better", False: "worse", None: "same"}[m.better],
                    ]
                    for m in deltas
                ],
            ),
            "",
        ]
    schema = lin.schema_axis
    if schema is None or not schema.declared:
        out.append("- **Schema**: no schema declared")
    else:
        changes = ", ".join(f"{c.kind.value} `{c.name}`" for c in schema.changes) or "no change"
        out.append(f"- **Schema**: {changes}")
    s = lin.sampling
    if s is None:
        out.append("- **Sampling**: no data versions recorded")
    else:
        out.append(
            f"- **Sampling**: {'changed' if s.changed else 'same'} "
            f"({s.base_digest or '—'} → {s.head_digest or '—'}); rows {_cell(s.rows_before)} → "
            f"{_cell(s.rows_after)}; size {_cell(s.size_before)} → {_cell(s.size_after)} bytes"
        )
    return out


async def _integrity(svc: ReleaseService) -> list[str]:
    store = svc.ws.audit
    out = ["## Audit integrity", ""]
    if store is None:
        return [*out, "No audit store is configured."]
    count, head = await store.head()
    out.append(f"- Log head: {count} records, head hash `{head or '—'}`")
    try:
        from console.audit.anchor import ANCHOR_REF, read_anchor_history

        anchors = await read_anchor_history(svc.config.root, timeout=svc.timeout)
        verify = getattr(store, "verify", None)
        result = await verify(anchors) if callable(verify) else None
    except Exception as exc:
        return [*out, f"- Anchor / verification unavailable: {exc}"]
    if anchors:
        a = anchors[0]
        out.append(
            f"- Anchor `{ANCHOR_REF}` (commit `{a.source[:12]}`): {a.count} records, head "
            f"`{a.head}`, written {_iso(a.at)}"
        )
    else:
        out.append(f"- Anchor `{ANCHOR_REF}`: none written")
    if result is not None:
        if result.ok:
            out.append(
                f"- Verified: ok ({result.count} records){'; ' + result.note if result.note else ''}"
            )
        else:
            out.append(f"- Verified: **FAILED** at seq {result.first_bad_seq}: {result.reason}")
    return out


def _trail(events: list[AuditEvent]) -> list[str]:
    rows = [
        [
            e.seq,
            _iso(e.at),
            e.actor,
            e.action + (f" ({e.details['op']})" if e.details.get("op") else ""),
            e.result,
            cut(mask(e.reason), 80),
            e.hash[:16],
        ]
        for e in events
    ]
    return _table(["seq", "at", "actor", "action", "result", "reason", "hash"], rows)


async def evidence_report(
    svc: ReleaseService, model: str, version: str, *, stage: str | None = None
) -> str:
    """The Markdown evidence record of ``version`` of ``model`` (its newest request's stage,
    else ``stage``, else production)."""
    views = [v for v in await svc.request_views(model) if v.request.version == version]
    view = views[-1] if views else None
    stage = stage or (view.request.stage if view else svc.config.prod_stage)
    ctx = await svc.context(model, version, stage, op=None)
    plan: Plan = svc.build_plan(ctx, svc.identity())
    base = view.request.from_version if view else ctx.target.current
    cmp = await compare(svc.ws, model, [version], stage=stage)
    cand = cmp.candidates[0]
    if base != cmp.base_version:  # compare against what the request moved from
        from console.services.lineage import LineageService
        from console.services.overview import OverviewService

        base_mv = ctx.target.version(base) if base else None
        lin = await LineageService(OverviewService(svc.ws)).lineage(model, ctx.version, base_mv)
        cand = cand.model_copy(update={"lineage": lin})
    mv = ctx.version
    lines = [
        f"# Release evidence: {model} {version} → {stage}",
        "",
        f"Generated {_iso(svc.clock())} by {plan.actor} from {svc.config.root}.",
        "",
        "## What",
        "",
        f"- Model: **{model}**, version **{version}** (commit `{mv.commit or '—'}`), "
        f"registered by {mv.created_by or '—'} {_iso(mv.created_at)}",
        f"- Stage **{stage}**: {base or 'nothing'} → {version}; now points at "
        f"{ctx.target.current or 'nothing'}",
        f"- Authors (four-eyes): {', '.join(ctx.authors) or '—'}",
        f"- Deploy effect: {plan.deploy}",
        "",
        "## Request and approvals",
        "",
    ]
    if view is None:
        lines.append("No promotion request was recorded for this version.")
    else:
        r = view.request
        lines += [
            f"- Request `{r.id}` ({view.op}), state **{r.state.value}**",
            f"- Requested by **{r.requested_by}** at {_iso(r.created_at)}: {r.reason}",
            f"- Evidence hash at request: `{view.evidence_hash or '—'}`",
            "",
        ]
        decisions = [
            [a.actor, a.decision.value, _iso(a.at), a.comment, a.evidence_hash[:16]]
            for a in r.approvals
        ]
        lines += (
            _table(["who", "decision", "at", "comment", "evidence"], decisions)
            if decisions
            else ["No approvals recorded."]
        )
        if len(views) > 1:
            lines += [
                "",
                "Earlier requests: " + ", ".join(f"`{v.id}` ({v.state.value})" for v in views[:-1]),
            ]
    lines += ["", "## Gates", ""]
    label, recorded = _recorded_gates(view) if view else ("", [])
    if recorded:
        lines += [f"Recorded {label}:", "", *_gates(recorded), ""]
    lines += [
        f"Evaluated now against {stage} (evidence `{plan.evidence_hash[:16]}`):",
        "",
        *_gates(plan.gates),
        "",
    ]
    lines += ["## Lineage", "", *_axes(cand), "", "## CI", ""]
    runs = [
        [
            x.pipeline,
            x.id,
            x.status.value,
            x.conclusion.value if x.conclusion else "—",
            _iso(x.finished_at or x.started_at),
            x.url,
        ]
        for x in cand.ci_runs
    ]
    lines += (
        _table(["pipeline", "run", "status", "conclusion", "at", "url"], runs)
        if runs
        else [f"No CI runs recorded for `{mv.commit[:12] or '—'}`."]
    )
    ids = {v.id for v in views}
    store = svc.ws.audit
    model_events = list(await store.events(model=model)) if store is not None else []
    trail = [
        e
        for e in model_events
        if e.request_id in ids or (e.version == version and not e.request_id)
    ]
    lines += ["", "## Audit trail", ""]
    lines += (
        _trail(sorted(trail, key=lambda e: e.seq))
        if trail
        else ["No audit events for this version."]
    )
    lines += ["", *await _integrity(svc), ""]
    # Audit records keep what they were given: a control character is written escaped.
    return escape_controls("\n".join(lines), lines=True)
