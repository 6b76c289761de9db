"""services.lineage: what changed between a version and a base (production), on four axes.

The axes follow the CD4ML practice: code (commits, authors, diffstat), model (params and
metric deltas), schema (fields added/removed/changed) and sampling (data hashes, sizes, rows).
The diff functions are pure so the compare feature can reuse them on any two versions; the
service only gathers their inputs through the ports, via OverviewService's section plumbing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from console.config import MetricSpec
from console.domain import Commit, DataSchema, DataVersion, DiffStat, ModelVersion
from console.domain.models import Frozen
from console.services.overview import OverviewService, Section, VersionDetail
from console.services.workspace import CODE, DATA


class ChangeKind(StrEnum):
    """How one item differs between base and head."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    SAME = "same"


class ParamChange(Frozen):
    """One training parameter that differs between base and head."""

    key: str
    kind: ChangeKind
    before: Any = None
    after: Any = None


class FieldChange(Frozen):
    """One schema field that was added, removed or changed (type or nullability)."""

    name: str
    kind: ChangeKind
    before_type: str = ""
    after_type: str = ""
    before_nullable: bool | None = None
    after_nullable: bool | None = None


class OutputChange(Frozen):
    """One DVC output compared between base and head."""

    path: str
    kind: ChangeKind
    md5_before: str = ""
    md5_after: str = ""
    size_before: int | None = None
    size_after: int | None = None
    nfiles_before: int | None = None
    nfiles_after: int | None = None

    @property
    def size_delta(self) -> int | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_after - self.size_before


class MetricDelta(Frozen):
    """A metric of head next to base, and whether the change is for the better."""

    name: str
    value: float | None = None
    base: float | None = None
    direction: Literal["higher", "lower"] = "higher"

    @property
    def delta(self) -> float | None:
        if self.value is None or self.base is None:
            return None
        return self.value - self.base

    @property
    def better(self) -> bool | None:
        """True better, False worse, None when equal or not comparable."""
        d = self.delta
        if d is None or d == 0:
            return None
        return (d > 0) == (self.direction == "higher")


class CodeAxis(Frozen):
    """Commits reachable from head but not from base, their authors and the diffstat.

    When head is an ancestor of base (an older candidate), ``behind`` holds base's commits
    head lacks (newest first) and ``diffstat`` is the change from head to base."""

    base_commit: str | None = None
    head_commit: str = ""
    commits: tuple[Commit, ...] = ()
    authors: tuple[str, ...] = ()
    diffstat: DiffStat | None = None
    truncated: bool = False
    behind: tuple[Commit, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.commits) or (self.base_commit or "") != self.head_commit


class ModelAxis(Frozen):
    """Hyperparameter diff and metric deltas."""

    params: tuple[ParamChange, ...] = ()
    metrics: tuple[MetricDelta, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.params)


class SchemaAxis(Frozen):
    """Schema fields added, removed or changed; ``declared`` is False when neither side has one."""

    declared: bool = False
    base_path: str = ""
    head_path: str = ""
    changes: tuple[FieldChange, ...] = ()
    fields: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class SamplingAxis(Frozen):
    """Data versions compared: per-output hashes and sizes, totals and row counts."""

    base_digest: str = ""
    head_digest: str = ""
    outputs: tuple[OutputChange, ...] = ()
    size_before: int | None = None
    size_after: int | None = None
    rows_before: int | None = None
    rows_after: int | None = None

    @property
    def changed(self) -> bool:
        return self.base_digest != self.head_digest

    @property
    def rows_delta(self) -> int | None:
        if self.rows_before is None or self.rows_after is None:
            return None
        return self.rows_after - self.rows_before

    @property
    def size_delta(self) -> int | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_after - self.size_before


class Lineage(Frozen):
    """The four-axis comparison of ``version`` against ``base_version``."""

    model: str
    version: str
    base_version: str | None = None
    code: CodeAxis | None = None
    model_axis: ModelAxis = Field(default_factory=ModelAxis)
    schema_axis: SchemaAxis | None = None
    sampling: SamplingAxis | None = None
    sections: dict[str, Section] = Field(default_factory=dict)
    fetched_at: datetime | None = None


# -- pure diff functions ----------------------------------------------------------------------

_MISSING = object()


def diff_params(base: Mapping[str, Any], head: Mapping[str, Any]) -> tuple[ParamChange, ...]:
    """Params added, removed or changed from ``base`` to ``head``, sorted by key."""
    out: list[ParamChange] = []
    for key in sorted(set(base) | set(head)):
        before = base.get(key, _MISSING)
        after = head.get(key, _MISSING)
        if before is _MISSING:
            out.append(ParamChange(key=key, kind=ChangeKind.ADDED, after=after))
        elif after is _MISSING:
            out.append(ParamChange(key=key, kind=ChangeKind.REMOVED, before=before))
        elif before != after:
            out.append(ParamChange(key=key, kind=ChangeKind.CHANGED, before=before, after=after))
    return tuple(out)


def diff_schema(base: DataSchema | None, head: DataSchema | None) -> SchemaAxis:
    """Fields added, removed or changed (type or nullability) from ``base`` to ``head``."""
    if base is None and head is None:
        return SchemaAxis(declared=False)
    before = {f.name: f for f in (base.fields if base else ())}
    after = {f.name: f for f in (head.fields if head else ())}
    changes: list[FieldChange] = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if b is None and a is not None:
            changes.append(
                FieldChange(
                    name=name, kind=ChangeKind.ADDED, after_type=a.type, after_nullable=a.nullable
                )
            )
        elif a is None and b is not None:
            changes.append(
                FieldChange(
                    name=name,
                    kind=ChangeKind.REMOVED,
                    before_type=b.type,
                    before_nullable=b.nullable,
                )
            )
        elif a is not None and b is not None and (a.type, a.nullable) != (b.type, b.nullable):
            changes.append(
                FieldChange(
                    name=name,
                    kind=ChangeKind.CHANGED,
                    before_type=b.type,
                    after_type=a.type,
                    before_nullable=b.nullable,
                    after_nullable=a.nullable,
                )
            )
    return SchemaAxis(
        declared=True,
        base_path=base.path if base else "",
        head_path=head.path if head else "",
        changes=tuple(changes),
        fields=len(after),
    )


def diff_data(base: DataVersion | None, head: DataVersion | None) -> SamplingAxis:
    """Per-output hash/size comparison plus total size and row deltas."""
    before = {o.path: o for o in (base.outputs if base else ())}
    after = {o.path: o for o in (head.outputs if head else ())}
    outputs: list[OutputChange] = []
    for path in sorted(set(before) | set(after)):
        b, a = before.get(path), after.get(path)
        if b is None and a is not None:
            kind = ChangeKind.ADDED
        elif a is None:
            kind = ChangeKind.REMOVED
        elif b is not None and b.md5 != a.md5:
            kind = ChangeKind.CHANGED
        else:
            kind = ChangeKind.SAME
        outputs.append(
            OutputChange(
                path=path,
                kind=kind,
                md5_before=b.md5 if b else "",
                md5_after=a.md5 if a else "",
                size_before=b.size if b else None,
                size_after=a.size if a else None,
                nfiles_before=b.nfiles if b else None,
                nfiles_after=a.nfiles if a else None,
            )
        )
    return SamplingAxis(
        base_digest=base.digest if base else "",
        head_digest=head.digest if head else "",
        outputs=tuple(outputs),
        size_before=base.total_size if base else None,
        size_after=head.total_size if head else None,
        rows_before=base.rows if base else None,
        rows_after=head.rows if head else None,
    )


def metric_deltas(
    head: Mapping[str, float],
    base: Mapping[str, float],
    spec: Callable[[str], MetricSpec],
    names: Iterable[str] | None = None,
) -> tuple[MetricDelta, ...]:
    """Head's metrics next to base's; ``names`` picks and orders them (default: all, sorted)."""
    keys = list(names) if names is not None else sorted(set(head) | set(base))
    return tuple(
        MetricDelta(name=k, value=head.get(k), base=base.get(k), direction=spec(k).direction)
        for k in keys
    )


def authors_of(commits: Sequence[Commit]) -> tuple[str, ...]:
    """Distinct authors, most commits first, then by name."""
    counts: dict[str, int] = {}
    for c in commits:
        name = c.author or c.author_email or "unknown"
        counts[name] = counts.get(name, 0) + 1
    return tuple(sorted(counts, key=lambda n: (-counts[n], n)))


# -- the service ------------------------------------------------------------------------------


class LineageService:
    """Gathers the inputs of a four-axis comparison through the ports, with per-section
    errors and stale-if-error from the shared OverviewService."""

    def __init__(self, overview: OverviewService, *, max_commits: int = 200) -> None:
        self.overview = overview
        self.config = overview.config
        self.max_commits = max_commits

    async def ci_detail(self, model: str, version: ModelVersion) -> VersionDetail:
        """Only the CI runs of ``version``'s commit (a VersionDetail with ``ci`` and its section):
        what the overview needs for a candidate, without reading params, metrics or data."""
        runs = await self.overview.version_ci([version])
        return VersionDetail(model=model, version=version.version).with_ci(runs[version.version])

    async def lineage(
        self, model: str, version: ModelVersion, base: ModelVersion | None
    ) -> Lineage:
        """Compare ``version`` with ``base`` (usually production; None: nothing to compare to)."""
        sections: dict[str, Section] = {}
        head_sha = version.commit
        base_sha = base.commit if base is not None else ""
        call = self.overview._call

        async def facts(sha: str) -> tuple[Any, ...]:
            if not sha:
                return None, {}, {}, None
            return await asyncio.gather(
                call(
                    DATA, ("dv", model, sha), lambda d: d.data_version(model, sha), sections, None
                ),
                call(
                    DATA,
                    ("params", model, sha),
                    lambda d: d.params(model, sha),
                    sections,
                    dict[str, Any](),
                ),
                call(
                    DATA,
                    ("metrics", model, sha),
                    lambda d: d.metrics(model, sha),
                    sections,
                    dict[str, float](),
                ),
                call(DATA, ("schema", model, sha), lambda d: d.schema(model, sha), sections, None),
            )

        async def code() -> tuple[Sequence[Commit], DiffStat | None]:
            if not head_sha:
                return (), None
            base_rev = base_sha or None
            none: Sequence[Commit] = ()
            commits_task = call(
                CODE,
                ("between", base_rev, head_sha),
                lambda c: c.commits_between(base_rev, head_sha),
                sections,
                none,
            )
            if not base_sha or base_sha == head_sha:
                return await commits_task, None
            return await asyncio.gather(
                commits_task,
                call(
                    CODE,
                    ("diffstat", base_sha, head_sha),
                    lambda c: c.diffstat(base_sha, head_sha),
                    sections,
                    None,
                ),
            )

        (
            (h_data, h_params, h_metrics, h_schema),
            (b_data, b_params, b_metrics, b_schema),
            (
                commits,
                stat,
            ),
        ) = await asyncio.gather(facts(head_sha), facts(base_sha), code())
        behind: Sequence[Commit] = ()
        if not commits and base_sha and head_sha and base_sha != head_sha:
            behind, stat = await self._behind(model, head_sha, base_sha, sections, stat)

        head_params = {**version.params, **h_params}
        head_metrics = {**version.metrics, **h_metrics}
        base_params = {**base.params, **b_params} if base else {}
        base_metrics = {**base.metrics, **b_metrics} if base else {}
        names = self._metric_names(model, head_metrics, base_metrics)
        commits = list(commits)
        code_axis = None
        if head_sha:
            code_axis = CodeAxis(
                base_commit=base_sha or None,
                head_commit=head_sha,
                commits=tuple(commits[: self.max_commits]),
                authors=authors_of(commits),
                diffstat=stat,
                truncated=len(commits) > self.max_commits or len(behind) > self.max_commits,
                behind=tuple(behind[: self.max_commits]),
            )
        return Lineage(
            model=model,
            version=version.version,
            base_version=base.version if base else None,
            code=code_axis,
            model_axis=ModelAxis(
                params=diff_params(base_params, head_params) if base else (),
                metrics=metric_deltas(head_metrics, base_metrics, self.config.metric_spec, names),
            ),
            schema_axis=diff_schema(b_schema, h_schema),
            sampling=diff_data(b_data, h_data) if (h_data or b_data) else None,
            sections=sections,
            fetched_at=self.overview.clock(),
        )

    async def _behind(
        self,
        model: str,
        head: str,
        base: str,
        sections: dict[str, Section],
        stat: DiffStat | None,
    ) -> tuple[Sequence[Commit], DiffStat | None]:
        """Head has no commit base lacks: base's commits head lacks, and the diff from head to
        base (what the candidate would take back out), else the diff as it was."""
        call = self.overview._call
        none: Sequence[Commit] = ()
        behind = await call(
            CODE, ("between", head, base), lambda c: c.commits_between(head, base), sections, none
        )
        if not behind:  # unrelated histories, or the code backend failed: keep what we have
            return (), stat
        forward = await call(
            CODE, ("diffstat", head, base), lambda c: c.diffstat(head, base), sections, None
        )
        return behind, forward

    def _metric_names(
        self, model: str, head: Mapping[str, float], base: Mapping[str, float]
    ) -> list[str]:
        """Key metrics first (as configured), then the others by name."""
        cfg = self.config.models.get(model)
        key = [k for k in (cfg.key_metrics if cfg else []) if k in head or k in base]
        rest = sorted((set(head) | set(base)) - set(key))
        return key + rest
