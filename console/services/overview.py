"""services.overview: assemble what the console shows about models, concurrently and honestly.

Every backend call runs with its own timeout. A failing call never raises to the caller: its
section carries the reason in words plus the last good value and its age (stale-if-error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import Field

from console.config import ConsoleConfig
from console.domain import (
    CIRun,
    Commit,
    DataVersion,
    Model,
    ModelVersion,
    ServingHealth,
    StageAssignment,
    version_key,
)
from console.domain.models import Frozen
from console.logs import redact
from console.ports import BackendError
from console.services.backend_names import backend_label
from console.services.workspace import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")

# Sections of a view, one per backend kind that feeds it.
SECTIONS = ("registry", "code", "data", "ci", "metrics")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Section(Frozen):
    """State of one section: fresh, stale (error + last good data) or unavailable."""

    name: str
    error: str = ""
    kind: str = ""  # BackendError.kind_label of the failure, e.g. "unreachable"
    fetched_at: datetime | None = None  # when the data shown was last good
    configured: bool = True

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def stale(self) -> bool:
        return bool(self.error) and self.fetched_at is not None


class VersionCI(Frozen):
    """The CI runs for one version's commit, read apart from its other facts: a CI server that
    hangs then holds back no metric or data version in the versions table."""

    version: str
    runs: tuple[CIRun, ...] = ()
    section: Section | None = None


class VersionDetail(Frozen):
    """Lineage facts of one version: commit, data version, metrics, params, CI runs."""

    model: str
    version: str
    commit: Commit | None = None
    data: DataVersion | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    ci: tuple[CIRun, ...] = ()
    ci_read: bool = True  # False: the CI runs are read apart and have not come yet
    sections: dict[str, Section] = Field(default_factory=dict)

    def with_ci(self, runs: VersionCI) -> VersionDetail:
        """This detail with its CI runs (and the CI section) read apart."""
        sections = {k: s for k, s in self.sections.items() if k != "ci"}
        if runs.section is not None:
            sections["ci"] = runs.section
        return self.model_copy(update={"ci": runs.runs, "ci_read": True, "sections": sections})

    @property
    def ci_state(self) -> str:
        """success / failure / running / none (pending: not read yet), from the newest run of
        each pipeline."""
        if not self.ci_read:
            return "pending"
        if not self.ci:
            return "none"
        newest: dict[str, CIRun] = {}
        for run in self.ci:  # newest first
            newest.setdefault(run.pipeline, run)
        runs = list(newest.values())
        if any(r.status.value != "completed" for r in runs):
            return "running"
        if all(r.succeeded for r in runs):
            return "success"
        return "failure"


class ModelView(Frozen):
    """Everything the overview row and the model screen header show for one model."""

    model: Model
    stages: tuple[StageAssignment, ...] = ()
    versions: tuple[ModelVersion, ...] = ()
    candidates: tuple[str, ...] = ()
    details: dict[str, VersionDetail] = Field(default_factory=dict)
    health: ServingHealth | None = None
    sections: dict[str, Section] = Field(default_factory=dict)
    fetched_at: datetime

    def stage_version(self, stage: str) -> str | None:
        for a in self.stages:
            if a.stage == stage:
                return a.version
        return None

    def assignment(self, stage: str) -> StageAssignment | None:
        return next((a for a in self.stages if a.stage == stage), None)

    @property
    def errors(self) -> dict[str, str]:
        return {k: s.error for k, s in self.sections.items() if s.error}


class _LastGood:
    """Bounded memory of the last good value per key, for stale-if-error."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, datetime]] = OrderedDict()

    def put(self, key: tuple[Any, ...], value: Any, at: datetime) -> None:
        self._items[key] = (value, at)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: tuple[Any, ...]) -> tuple[Any, datetime] | None:
        return self._items.get(key)


def describe_error(
    exc: BaseException, kind: str, timeout: float, config: ConsoleConfig | None = None
) -> tuple[str, str]:
    """(message, kind label) for a failure, in words a person can act on; with ``config`` a
    timeout or unexpected failure names the backend's type and where it points."""
    if isinstance(exc, BackendError):
        return str(exc), exc.kind_label
    who = backend_label(config, kind)
    if isinstance(exc, NotSent):
        return (
            f"{who} did not answer an earlier call within {timeout:g}s; this one was not sent",
            "timeout",
        )
    if isinstance(exc, TimeoutError):
        return f"{who} did not answer within {timeout:g}s", "timeout"
    return f"{who} failed unexpectedly: {type(exc).__name__}: {redact(str(exc))}", "internal error"


class NotSent(TimeoutError):
    """A call that waited for a slot while an earlier call to the same backend got no answer
    within the timeout: it is not sent to a peer that is not answering."""


class Gate:
    """The calls in flight to one backend kind, at most ``size``.

    The timeout of a call runs from when it is sent (it has a slot), never from when it began
    to wait: on a busy machine a queue of calls that are all answered is not a failure. So that
    a queue behind a peer that does not answer still ends after about one timeout, a call that
    waited while another timed out is not sent (it raises NotSent).
    """

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)
        self._timeouts = 0  # calls that got no answer within the timeout, so far

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float) -> AsyncIterator[None]:
        seen = self._timeouts
        async with self._slots:
            if self._timeouts != seen:
                raise NotSent
            try:
                async with asyncio.timeout(timeout):  # no task per call, unlike wait_for
                    yield
            except TimeoutError:
                self._timeouts += 1
                raise


class OverviewService:
    """Gathers model views from the workspace's ports. Keep one per session: it remembers the
    last good value of the ``memory`` most recent calls, so a failing backend shows stale data
    with its age."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = 16,
        memory: int = 1024,
    ) -> None:
        self.ws = workspace
        self.config = workspace.config
        self.clock = clock
        self.timeout = workspace.config.timeout_seconds
        self._last = _LastGood(memory)
        self._concurrency = concurrency
        # One bound per backend kind: 80 hanging CI reads must not hold up the data reads.
        self._gates: dict[str, Gate] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _gate(self, kind: str) -> Gate:
        gate = self._gates.get(kind)
        if gate is None:
            gate = self._gates[kind] = Gate(self._concurrency)
        return gate

    async def _call(
        self,
        kind: str,
        key: tuple[Any, ...],
        make: Callable[[Any], Awaitable[T]],
        sections: dict[str, Section],
        default: T,
    ) -> T:
        """Call ``make(backend)`` with a timeout; on failure record the section error and
        return the last good value (or ``default``)."""
        backend = self.ws.get(kind)
        if backend is None:
            problem = self.ws.problems.get(kind)
            if problem:
                sections.setdefault(kind, Section(name=kind, error=problem, kind="unavailable"))
            else:
                sections.setdefault(kind, Section(name=kind, configured=False))
            return default
        try:
            async with self._gate(kind).slot(self.timeout):  # the timeout runs from the send
                value = await make(backend)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message, label = describe_error(exc, kind, self.timeout, self.config)
            if not isinstance(exc, BackendError | TimeoutError):
                log.exception("%s backend raised a non-BackendError", kind)
            last = self._last.get((kind, *key))
            previous = sections.get(kind)
            if previous is None or previous.ok:
                sections[kind] = Section(
                    name=kind, error=message, kind=label, fetched_at=last[1] if last else None
                )
            return last[0] if last else default
        now = self.clock()
        self._last.put((kind, *key), value, now)
        sections.setdefault(kind, Section(name=kind, fetched_at=now))
        return value

    # -- queries ----------------------------------------------------------------------------

    async def list_models(self) -> tuple[list[Model], Section]:
        """Models from the registry, in config order first, then by name."""
        sections: dict[str, Section] = {}
        found = await self._call(
            "registry", ("models",), lambda r: r.models(), sections, list[Model]()
        )
        by_name = {m.name: m for m in found}
        for n, cfg in self.config.models.items():
            known = by_name.get(n)
            if known is None:
                by_name[n] = Model(name=n, description=cfg.description)
            elif not known.description and cfg.description:  # the config's words, then
                by_name[n] = known.model_copy(update={"description": cfg.description})
        order = {n: i for i, n in enumerate(self.config.models)}
        models = sorted(by_name.values(), key=lambda m: (order.get(m.name, len(order)), m.name))
        return models, sections.get("registry", Section(name="registry"))

    async def version_details(
        self,
        model: str,
        versions: Sequence[ModelVersion],
        *,
        with_params: bool = True,
        with_ci: bool = True,
    ) -> dict[str, VersionDetail]:
        """Lineage facts for ``versions`` of ``model``, all fetched concurrently; without
        ``with_params`` the parameters files are not read (only the registry's params);
        without ``with_ci`` the CI runs are left to :meth:`version_ci` (``ci_read`` False)."""
        results = await asyncio.gather(
            *(self._detail(model, v, with_params=with_params, with_ci=with_ci) for v in versions)
        )
        return {d.version: d for d in results}

    async def version_ci(self, versions: Sequence[ModelVersion]) -> dict[str, VersionCI]:
        """The CI runs for each version's commit, all fetched concurrently."""

        async def one(version: ModelVersion) -> VersionCI:
            sha = version.commit
            if not sha:
                return VersionCI(version=version.version)
            sections: dict[str, Section] = {}
            runs = await self._runs_for(sha, sections)
            return VersionCI(version=version.version, runs=tuple(runs), section=sections.get("ci"))

        results = await asyncio.gather(*(one(v) for v in versions))
        return {r.version: r for r in results}

    async def _no_params(self) -> dict[str, Any]:
        return {}

    async def _no_ci(self) -> tuple[CIRun, ...]:
        return ()

    def _runs_for(self, sha: str, sections: dict[str, Section]) -> Awaitable[Sequence[CIRun]]:
        return self._call("ci", ("runs", sha), lambda c: c.runs_for(sha), sections, ())

    async def _detail(
        self, model: str, version: ModelVersion, *, with_params: bool = True, with_ci: bool = True
    ) -> VersionDetail:
        sections: dict[str, Section] = {}
        sha = version.commit
        if not sha:
            return VersionDetail(
                model=model,
                version=version.version,
                metrics=dict(version.metrics),
                params=dict(version.params),
            )
        commit, data, metrics, params, ci = await asyncio.gather(
            self._call("code", ("commit", sha), lambda c: c.commit(sha), sections, None),
            self._call(
                "data", ("dv", model, sha), lambda d: d.data_version(model, sha), sections, None
            ),
            self._call(
                "data",
                ("metrics", model, sha),
                lambda d: d.metrics(model, sha),
                sections,
                dict[str, float](),
            ),
            self._call(
                "data",
                ("params", model, sha),
                lambda d: d.params(model, sha),
                sections,
                dict[str, Any](),
            )
            if with_params
            else self._no_params(),
            self._runs_for(sha, sections) if with_ci else self._no_ci(),
        )
        # Registry-provided facts (MLflow runs) complete what git knows, never override it.
        merged_metrics = {**version.metrics, **metrics}
        merged_params = {**version.params, **params}
        return VersionDetail(
            model=model,
            version=version.version,
            commit=commit,
            data=data,
            metrics=merged_metrics,
            params=merged_params,
            ci=tuple(ci),
            ci_read=with_ci,
            sections=sections,
        )

    async def health(
        self, model: str, stage: str | None = None
    ) -> tuple[ServingHealth | None, Section]:
        stage = stage or self.config.prod_stage
        sections: dict[str, Section] = {}
        value = await self._call(
            "metrics", ("health", model, stage), lambda m: m.health(model, stage), sections, None
        )
        return value, sections.get("metrics", Section(name="metrics"))

    async def model_view(
        self,
        model: str | Model,
        *,
        with_details: bool = True,
        with_health: bool = True,
        candidates_detail: int = 3,
        with_params: bool = True,
    ) -> ModelView:
        """One model: stages in configured order, versions, waiting candidates, details for
        the versions in a stage and the newest candidates, and production health."""
        m = model if isinstance(model, Model) else Model(name=model)
        name = m.name
        sections: dict[str, Section] = {}

        health_task = asyncio.ensure_future(self.health(name)) if with_health else None
        versions, assigned = await asyncio.gather(
            self._call(
                "registry",
                ("versions", name),
                lambda r: r.versions(name),
                sections,
                list[ModelVersion](),
            ),
            self._call(
                "registry",
                ("stages", name),
                lambda r: r.stages(name),
                sections,
                list[StageAssignment](),
            ),
        )
        versions = sorted(versions, key=lambda v: version_key(v.version))
        stages = self._ordered_stages(name, assigned)
        prod = next((a.version for a in stages if a.stage == self.config.prod_stage), None)
        candidates = self._candidates(versions, stages, prod)

        details: dict[str, VersionDetail] = {}
        if with_details:
            wanted_names = {a.version for a in stages if a.version}
            wanted_names.update(candidates[-candidates_detail:] if candidates_detail else [])
            wanted = [v for v in versions if v.version in wanted_names]
            details = await self.version_details(name, wanted, with_params=with_params)
            for d in details.values():
                for kind, sec in d.sections.items():
                    if not sec.ok and sections.get(kind, Section(name=kind)).ok:
                        sections[kind] = sec
                    else:
                        sections.setdefault(kind, sec)

        health = None
        if health_task is not None:
            health, hsec = await health_task
            sections["metrics"] = hsec

        return ModelView(
            model=m,
            stages=tuple(stages),
            versions=tuple(versions),
            candidates=tuple(candidates),
            details=details,
            health=health,
            sections=sections,
            fetched_at=self.clock(),
        )

    async def overview(
        self,
        models: Sequence[Model] | None = None,
        *,
        candidates_detail: int = 3,
        with_params: bool = True,
    ) -> list[ModelView]:
        """A view of every model (or ``models``), gathered concurrently."""
        if models is None:
            models, _ = await self.list_models()
        views = (
            self.model_view(m, candidates_detail=candidates_detail, with_params=with_params)
            for m in models
        )
        return list(await asyncio.gather(*views))

    # -- rules ------------------------------------------------------------------------------

    def _ordered_stages(
        self, model: str, assigned: Sequence[StageAssignment]
    ) -> list[StageAssignment]:
        by_stage = {a.stage: a for a in assigned}
        ordered = [
            by_stage.get(s) or StageAssignment(model=model, stage=s, version=None)
            for s in self.config.stages
        ]
        extra = [a for s, a in sorted(by_stage.items()) if s not in self.config.stages]
        return ordered + extra

    @staticmethod
    def _candidates(
        versions: Sequence[ModelVersion], stages: Sequence[StageAssignment], prod: str | None
    ) -> list[str]:
        """Registered versions newer than production (``versions`` are sorted oldest first)."""
        names = [v.version for v in versions]
        start = names.index(prod) + 1 if prod in names else 0
        return [v.version for v in versions[start:] if not v.deregistered]
