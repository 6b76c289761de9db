"""`status` and `versions`: collect through services.overview, render as text or stable JSON.

The JSON shapes are documented in docs/cli.md; change them only by adding keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, NoReturn

from console.domain import ModelVersion
from console.ports import NotFound, RegistryRemote
from console.services.health import HealthService, StageHealth
from console.services.incidents import RolledBack
from console.services.overview import ModelView, OverviewService, VersionDetail, utcnow
from console.services.workspace import Workspace

STATUS_SCHEMA = "cd4ml-console/status/v1"
VERSIONS_SCHEMA = "cd4ml-console/versions/v1"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def detail_doc(d: VersionDetail | None, v: ModelVersion | None = None) -> dict[str, Any]:
    """The facts of one version as JSON-ready data."""
    data = d.data if d else None
    return {
        "commit": (d.commit.sha if d and d.commit else (v.commit if v else None)) or None,
        "commit_short": (d.commit.short if d and d.commit else (v.commit[:8] if v else None))
        or None,
        "data_version": data.digest if data and data.outputs else None,
        "data": [o.model_dump() for o in data.outputs] if data else [],
        "rows": data.rows if data else None,
        "metrics": dict(d.metrics) if d else {},
        "ci": d.ci_state if d else "none",
    }


def _errors(view: ModelView) -> dict[str, str]:
    return {name: s.error for name, s in sorted(view.sections.items()) if s.error}


def _health_doc(
    view: ModelView, prod: str, verdicts: dict[str, StageHealth]
) -> dict[str, Any] | None:
    """Production's live health now, its verdict over the SLO window and the reasons."""
    h, judged = view.health, verdicts.get(prod)
    if h is None and judged is None:
        return None
    return {
        "stage": prod,
        "version": (h.version if h else None) or (judged.version if judged else None),
        "latency_p95_ms": h.latency_p95_ms if h else None,
        "error_rate": h.error_rate if h else None,
        "traffic_rps": h.traffic_rps if h else None,
        "prediction_mean": h.prediction_mean if h else None,
        "observed_at": _iso(h.observed_at) if h else None,
        "verdict": judged.verdict if judged else None,
        "reasons": list(judged.reasons) if judged else [],
    }


def model_doc(
    view: ModelView,
    stages: list[str],
    prod: str,
    verdicts: dict[str, StageHealth] | None = None,
) -> dict[str, Any]:
    by_version = {v.version: v for v in view.versions}
    stage_docs: dict[str, Any] = {}
    for stage in stages:
        a = view.assignment(stage)
        if a is None or a.version is None:
            stage_docs[stage] = None
            continue
        doc = {
            "version": a.version,
            **detail_doc(view.details.get(a.version), by_version.get(a.version)),
            "assigned_by": a.assigned_by or None,
            "assigned_at": _iso(a.assigned_at),
        }
        stage_docs[stage] = doc
    verdicts = verdicts or {}
    return {
        "name": view.model.name,
        "description": view.model.description,
        "deprecated": view.model.deprecated,
        "stages": stage_docs,
        "candidates": list(view.candidates),
        "versions": sum(1 for v in view.versions if not v.deregistered),  # as gto counts
        "health": _health_doc(view, prod, verdicts),
        "health_by_stage": {s: h.doc() for s, h in verdicts.items()},
        "errors": _errors(view),
    }


STATUS_CHUNK = 250  # models read together: their views are dropped once turned into JSON


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Let the cyclic garbage collector run less often while thousands of short-lived objects
    are made: its full passes walk every object alive, and made 30-40% of status's CPU at
    1,000-2,000 models. What was alive before is frozen out of those passes."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def stage_verdicts(health: HealthService, view: ModelView) -> dict[str, StageHealth]:
    """The verdict of every stage of ``view`` with live data (production always)."""
    serving = {a.stage: a.version for a in view.stages}
    return {h.stage: h for h in await health.model(view.model.name, serving)}


async def collect_status(
    ws: Workspace, model: str | None = None, *, clock: Callable[[], datetime] = utcnow
) -> dict[str, Any]:
    """status --json's document. ``clock``: the time of the verdicts and of generated_at."""
    with fewer_collections():
        return await _collect_status(ws, model, clock)


async def _collect_status(
    ws: Workspace, model: str | None, clock: Callable[[], datetime]
) -> dict[str, Any]:
    # One pass: no earlier value to fall back on.
    service = OverviewService(ws, memory=0, clock=clock)
    models, reg = await service.list_models()
    if model is not None:
        models = [m for m in models if m.name == model]
    config = ws.config
    health = HealthService(service)
    docs = []
    for start in range(0, len(models), STATUS_CHUNK):
        chunk = models[start : start + STATUS_CHUNK]
        views = await service.overview(chunk, candidates_detail=0, with_params=False)
        verdicts = await asyncio.gather(*(stage_verdicts(health, v) for v in views))
        docs += [
            model_doc(v, config.stages, config.prod_stage, j)
            for v, j in zip(views, verdicts, strict=True)
        ]
    errors = [
        {"model": d["name"], "section": sec, "message": msg}
        for d in docs
        for sec, msg in d["errors"].items()
    ]
    if reg.error and not any(e["section"] == "registry" for e in errors):
        errors.insert(0, {"model": None, "section": "registry", "message": reg.error})
    return {
        "schema": STATUS_SCHEMA,
        "workspace": ws.label,
        "generated_at": service.clock().isoformat(),
        "stages": list(config.stages),
        "production_stage": config.prod_stage,
        "registry": await registry_freshness(ws),
        "models": docs,
        "errors": errors,
    }


async def registry_freshness(ws: Workspace) -> dict[str, Any]:
    """Where the registry's shared truth is (a git remote) and when this clone last fetched
    it: reads show the local clone, so a script can tell how old that view is."""
    registry = ws.registry
    remote, fetched = None, None
    if not isinstance(registry, RegistryRemote):
        return {"remote": None, "fetched_at": None}
    try:
        remote = await registry.remote()
        fetched = await registry.fetched_at() if remote else None
    except Exception as exc:  # a remote that is misconfigured is said by doctor and actions
        return {"remote": None, "fetched_at": None, "problem": str(exc)}
    return {"remote": remote, "fetched_at": _iso(fetched)}


async def collect_versions(ws: Workspace, model: str) -> tuple[dict[str, Any], bool]:
    """The versions document, and whether the registry said it has no such model."""
    from console.services.incidents import IncidentService

    service = OverviewService(ws)
    view = await service.model_view(model, with_details=False, with_health=False)
    registry = view.sections.get("registry")
    unknown = registry is not None and registry.kind == NotFound.kind_label
    details, (incidents, incidents_error) = await asyncio.gather(
        service.version_details(model, list(view.versions), with_params=False),
        IncidentService(service).rolled_back(model),
    )
    sections = dict(view.sections)
    for d in details.values():
        for name, sec in d.sections.items():
            if sec.error and name not in {k for k, s in sections.items() if s.error}:
                sections[name] = sec
    rows = []
    for v in reversed(view.versions):  # newest first
        rows.append(
            {
                "version": v.version,
                "stages": list(v.stages),
                "created_by": v.created_by or None,
                "created_at": _iso(v.created_at),
                "deregistered": v.deregistered,
                **detail_doc(details.get(v.version), v),
                "rolled_back": _rolled_back_doc(incidents.get(v.version)),
            }
        )
    errors = {k: s.error for k, s in sorted(sections.items()) if s.error}
    if incidents_error:
        errors.setdefault("audit", incidents_error)
    return {
        "schema": VERSIONS_SCHEMA,
        "workspace": ws.label,
        "model": model,
        "versions": rows,
        "errors": errors,
    }, unknown


def _rolled_back_doc(rec: RolledBack | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {
        "stage": rec.stage,
        "at": _iso(rec.at),
        "by": rec.by or None,
        "reason": rec.reason or None,
        "to_version": rec.to_version,
        "source": rec.source,
    }


# -- text rendering ---------------------------------------------------------------------------


def _fmt_metrics(metrics: dict[str, float], keys: list[str] | None = None, limit: int = 3) -> str:
    names = [k for k in (keys or []) if k in metrics] or sorted(metrics)[:limit]
    return " ".join(f"{k}={metrics[k]:.4g}" for k in names)


def _fmt_verdict(h: dict[str, Any] | None) -> str:
    """'BREACH p95 1.7 s > 250 ms' / 'ok' / 'unknown: only 12 requests in 10 min (< 100)'."""
    if not h or not h.get("verdict"):
        return ""
    verdict = h["verdict"]
    if verdict == "ok":
        return "ok"
    head = verdict.upper() if verdict == "breach" else verdict
    reasons = h.get("reasons") or []
    return f"{head}: {reasons[0]}" if reasons else head


def _fmt_health(h: dict[str, Any] | None) -> str:
    if not h:
        return "—"
    parts = []
    if h.get("latency_p95_ms") is not None:
        parts.append(f"p95 {h['latency_p95_ms']:.0f}ms")
    if h.get("error_rate") is not None:
        parts.append(f"err {h['error_rate'] * 100:.1f}%")
    if h.get("traffic_rps") is not None:
        parts.append(f"{h['traffic_rps']:.1f} rps")
    return " ".join(parts) or "—"


def _echo_json(doc: dict[str, Any]) -> None:
    """``print(json.dumps(doc, indent=2))``, written as it is encoded: the text of 2,000 models
    and its million pieces are never in memory at once."""
    import sys

    pieces = json.JSONEncoder(indent=2, default=str).iterencode(doc)
    with fewer_collections():  # the document's objects are many, and all alive
        while chunk := "".join(itertools.islice(pieces, 4096)):
            sys.stdout.write(chunk)
    sys.stdout.write("\n")


def _console(*, stderr: bool = False) -> Any:
    import sys

    from rich.console import Console

    class PipedConsole(Console):
        def on_broken_pipe(self) -> NoReturn:
            # Rich would exit 1 here; the CLI ends every command's broken pipe the same way.
            raise BrokenPipeError

    # Piped output is read by people in wide windows and by grep: do not wrap it at 80.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    # markup and emoji off: names and messages come from backends and are printed as they are
    return PipedConsole(
        highlight=False, soft_wrap=False, width=width, file=stream, markup=False, emoji=False
    )


def _print_errors(console: Any, errors: list[dict[str, Any]]) -> None:
    """One line per distinct problem, naming every model it affects."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for e in errors:
        grouped.setdefault((e["section"], e["message"]), []).append(e["model"] or "")
    for (section, message), models in grouped.items():
        names = ", ".join(m for m in models if m)
        where = f" ({names})" if names else ""
        console.print(f"! {section}{where}: {message}", markup=False, soft_wrap=True)


def render_status(
    doc: dict[str, Any], *, as_json: bool, key_metrics: dict[str, list[str]] | None = None
) -> None:
    if as_json:
        _echo_json(doc)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    cols = ("model", "stage", "version", "commit", "data", "metrics", "ci", "live", "health")
    for col in cols:
        table.add_column(
            col, no_wrap=col not in ("metrics", "health"), overflow="fold", min_width=len(col)
        )
    for m in doc["models"]:
        first = True
        for stage in reversed(doc["stages"]):
            s = m["stages"].get(stage)
            live = _fmt_health(m["health"]) if stage == doc["production_stage"] else ""
            name = m["name"] + (" (deprecated)" if m.get("deprecated") else "")
            table.add_row(
                name if first else "",
                stage,
                s["version"] if s else "—",
                (s["commit_short"] or "") if s else "",
                (s["data_version"] or "") if s else "",
                _fmt_metrics(s["metrics"], (key_metrics or {}).get(m["name"])) if s else "",
                s["ci"] if s else "",
                live,
                _fmt_verdict(m.get("health_by_stage", {}).get(stage)),
            )
            first = False
        shown = {s["version"] for s in m["stages"].values() if s}
        waiting = [c for c in m["candidates"] if c not in shown]
        if waiting:
            more = f" (+{len(waiting) - 3})" if len(waiting) > 3 else ""
            table.add_row("", "waiting", ", ".join(waiting[-3:]) + more, *[""] * 6)
    _console().print(table)
    said = _console(stderr=True)  # the table stays clean for pipes
    reg = doc.get("registry") or {}
    if reg.get("remote"):
        when = reg.get("fetched_at") or "never"
        said.print(
            f"registry: shared through {reg['remote']}; last fetched {when} "
            "(release actions fetch first)",
            highlight=False,
        )
    _print_errors(said, doc["errors"])


def render_versions(doc: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        _echo_json(doc)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("version", "stages", "created", "by", "commit", "data", "metrics", "ci"):
        table.add_column(col, no_wrap=col != "metrics")
    for r in doc["versions"]:
        back = r.get("rolled_back")
        table.add_row(
            r["version"]
            + (" (deregistered)" if r["deregistered"] else "")
            + (f" ↩ rolled back from {back['stage']}" if back else ""),
            ",".join(r["stages"]),
            (r["created_at"] or "")[:16].replace("T", " "),
            r["created_by"] or "",
            r["commit_short"] or "",
            r["data_version"] or "",
            _fmt_metrics(r["metrics"]),
            r["ci"],
        )
    console = _console()
    console.print(table)
    for r in doc["versions"]:
        back = r.get("rolled_back")
        if back:
            when = (back["at"] or "")[:16].replace("T", " ")
            line = (
                f"↩ {r['version']} rolled back from {back['stage']} to {back['to_version'] or '?'}"
                f" at {when} by {back['by'] or '?'}: {back['reason'] or '(no reason recorded)'}"
            )
            console.print(line, markup=False, soft_wrap=True)
    _print_errors(
        _console(stderr=True),
        [{"model": None, "section": k, "message": v} for k, v in doc["errors"].items()],
    )
