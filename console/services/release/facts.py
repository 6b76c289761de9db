"""Read what the release rules need from the ports, each call with a timeout.

A fact that can not be read is recorded as the reason in words; gates then fail closed on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from console.config import ConsoleConfig
from console.config.model import parse_duration
from console.domain import (
    CIRun,
    DataSchema,
    LiveWindow,
    ModelVersion,
    StageAssignment,
    version_key,
)
from console.domain.text import clean_value
from console.logs import excerpt
from console.ports import BackendError, ModelRegistry, NotFound
from console.services.backend_names import backend_label
from console.services.release.gates import GateFacts, LiveFacts, SchemaChange

if TYPE_CHECKING:
    from console.services.workspace import Workspace

T = TypeVar("T")
P = TypeVar("P")  # a port


class Unavailable(Exception):
    """A port needed for a decision did not answer; ``str()`` says which and why."""


def describe(
    exc: BaseException, kind: str, timeout: float, config: ConsoleConfig | None = None
) -> str:
    """Why a call to the ``kind`` backend failed; with ``config`` a timeout or unexpected
    failure names the backend's type and where it points (never a credential)."""
    if isinstance(exc, BackendError):
        return str(exc)
    who = backend_label(config, kind)
    if isinstance(exc, TimeoutError):
        return f"the {who} did not answer within {timeout:g}s"
    return f"the {who} failed: {type(exc).__name__}: {excerpt(str(exc))}"


async def call(
    kind: str, aw: Awaitable[T], timeout: float, config: ConsoleConfig | None = None
) -> T:
    """Await ``aw`` with a timeout; any failure becomes Unavailable naming the backend."""
    try:
        return clean_value(await asyncio.wait_for(aw, timeout))  # plain dicts: metrics
    except NotFound:
        raise
    except Exception as exc:
        raise Unavailable(describe(exc, kind, timeout, config)) from exc


@dataclass(frozen=True)
class Target:
    """A model's versions and where ``stage`` points now."""

    model: str
    stage: str
    versions: tuple[ModelVersion, ...]
    assignment: StageAssignment | None

    @property
    def current(self) -> str | None:
        return self.assignment.version if self.assignment else None

    def version(self, text: str) -> ModelVersion | None:
        return next((v for v in self.versions if v.version == text), None)


async def read_target(
    registry: ModelRegistry,
    model: str,
    stage: str,
    timeout: float,
    config: ConsoleConfig | None = None,
) -> Target:
    """Versions (oldest first) and the current assignment of ``stage``."""
    versions, stages = await asyncio.gather(
        call("registry", registry.versions(model), timeout, config),
        call("registry", registry.stages(model), timeout, config),
    )
    ordered = tuple(sorted(versions, key=lambda v: version_key(v.version)))
    assignment = next((a for a in stages if a.stage == stage), None)
    return Target(model=model, stage=stage, versions=ordered, assignment=assignment)


async def current_assignment(
    registry: ModelRegistry,
    model: str,
    stage: str,
    timeout: float,
    config: ConsoleConfig | None = None,
) -> StageAssignment | None:
    """Read ``stage`` back from the registry (after a timeout, before a move)."""
    stages = await call("registry", registry.stages(model), timeout, config)
    return next((a for a in stages if a.stage == stage), None)


async def _soft(
    kind: str,
    port: P | None,
    make: Callable[[P], Awaitable[T]],
    timeout: float,
    default: T,
    config: ConsoleConfig | None,
) -> tuple[T, str]:
    """(value, "") or (default, reason) — for facts a gate judges rather than needs."""
    if port is None:
        return default, f"no {kind} backend is configured"
    try:
        return await asyncio.wait_for(make(port), timeout), ""
    except Exception as exc:
        return default, describe(exc, kind, timeout, config)


async def gather_facts(
    ws: Workspace,
    model: str,
    version: ModelVersion,
    stage: str,
    base: ModelVersion | None,
    timeout: float,
) -> tuple[GateFacts, tuple[str, ...], str]:
    """Gate facts for ``version`` against ``base`` (the stage's version), the names the
    version's authors go by, and why authorship is unknown ("" when known)."""
    from console.services.lineage import diff_schema

    sha, base_sha = version.commit, base.commit if base else ""
    data, ci, code, config = ws.data, ws.ci, ws.code, ws.config

    async def metrics_of(mv: ModelVersion) -> tuple[dict[str, float], str]:
        if not mv.commit:
            return dict(mv.metrics), ""
        empty: dict[str, float] = {}
        got, err = await _soft(
            "data", data, lambda d: d.metrics(model, mv.commit), timeout, empty, config
        )
        return {**mv.metrics, **got}, err

    async def schema_of(commit: str) -> tuple[DataSchema | None, str]:
        if not commit:
            return None, ""
        return await _soft("data", data, lambda d: d.schema(model, commit), timeout, None, config)

    no_runs: Sequence[CIRun] = ()
    (
        (m, m_err),
        (bm, _),
        (runs, ci_err),
        (head_s, hs_err),
        (base_s, bs_err),
        (commit, c_err),
    ) = await asyncio.gather(
        metrics_of(version),
        metrics_of(base) if base else _none({}),
        _soft("ci", ci, lambda c: c.runs_for(sha), timeout, no_runs, config)
        if sha
        else _none(no_runs, "the version has no commit"),
        schema_of(sha),
        schema_of(base_sha) if base else _none(None),
        _soft("code", code, lambda c: c.commit(sha), timeout, None, config)
        if sha
        else _none(None, "the version has no commit"),
    )
    changes: tuple[SchemaChange, ...] = ()
    schema_err = hs_err or bs_err
    if base is not None and not schema_err and base.commit != sha:
        axis = diff_schema(base_s, head_s)
        changes = tuple(SchemaChange(name=c.name, kind=c.kind.value) for c in axis.changes)
    facts = GateFacts(
        model=model,
        version=version.version,
        stage=stage,
        commit=sha,
        base_version=base.version if base else None,
        metrics=m,
        base_metrics=bm,
        ci_runs=tuple(runs),
        ci_error=ci_err,
        schema_changes=changes,
        schema_error=schema_err,
        metrics_error=m_err,
    )
    authors = [version.created_by] if version.created_by else []
    if commit is not None:
        authors += [n for n in (commit.author, commit.author_email) if n]
    why = ""
    if not version.created_by and commit is None:
        why = f"neither the registry nor git say who made {version.version} ({c_err})"
    return facts, tuple(dict.fromkeys(authors)), why


async def _none(value: T, err: str = "") -> tuple[T, str]:
    return value, err


async def gather_live(
    ws: Workspace, model: str, version: str, stage: str, base_version: str | None, timeout: float
) -> LiveFacts | None:
    """The live gates' figures: ``version`` where it serves before ``stage`` (shadow/canary)
    and ``base_version`` in ``stage``, over the live gates' window; None without live gates."""
    from console.services.health import read_window

    config: ConsoleConfig = ws.config
    spec = config.policy.for_stage(stage).live
    if spec is None:
        return None
    order = list(config.stages)
    before = order[order.index(stage) - 1] if stage in order and order.index(stage) > 0 else None
    source = spec.source_stage or before
    window = spec.window or config.slo_for(model).window
    seconds = parse_duration(window)
    if source is None:
        why = f"no stage before {stage} serves the candidate; set live.source_stage"
        return LiveFacts(source_stage=None, window_seconds=seconds, candidate_error=why)

    async def base() -> tuple[LiveWindow | None, str, bool]:
        if base_version is None:
            return None, f"{stage} holds no version to compare with", False
        return await read_window(
            ws, model, stage, version=base_version, seconds=seconds, timeout=timeout
        )

    (cand, c_err, _), (prod, p_err, _) = await asyncio.gather(
        read_window(ws, model, source, version=version, seconds=seconds, timeout=timeout),
        base(),
    )
    return LiveFacts(
        source_stage=source,
        window_seconds=seconds,
        candidate=cand,
        candidate_error=c_err,
        production=prod,
        production_error=p_err,
    )


async def with_live_and_incident(
    ws: Workspace, facts: GateFacts, timeout: float, *, live: bool = True
) -> GateFacts:
    """``facts`` with the version's rollback record and (``live``: for promotions) the live
    gates' figures, read concurrently."""
    from dataclasses import replace

    from console.services.incidents import read_rolled_back

    config = ws.config

    async def no_live() -> LiveFacts | None:
        return None

    (records, why), figures = await asyncio.gather(
        read_rolled_back(ws, facts.model, timeout, config),
        gather_live(ws, facts.model, facts.version, facts.stage, facts.base_version, timeout)
        if live
        else no_live(),
    )
    return replace(
        facts, live=figures, rolled_back=records.get(facts.version), rolled_back_error=why
    )
