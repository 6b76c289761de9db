"""services.overview: assemble what the console shows about models, concurrently and honestly.

Every backend call runs with its own timeout. A failing call never raises to the caller: its
section carries the reason in words plus the last good value and its age (stale-if-error).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from pydantic import Field

from console.config import ConsoleConfig
from console.domain import (
    CIRun,
    Commit,
    DataVersion,
    Model,
    ModelVersion,
    RegistryEntry,
    ServingHealth,
    StageAssignment,
    version_key,
)
from console.domain.models import Frozen
from console.domain.text import clean_value
from console.logs import excerpt
from console.ports import BackendError, InvalidResponse, ModelRegistry, NotFound
from console.services.backend_names import backend_label
from console.services.workspace import CI, CODE, DATA, METRICS, REGISTRY, Kind, P, Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")

BATCH_ITEMS = 500  # items per batch call: one timeout covers a bounded amount of work

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
        if not self.size:
            return
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
    return f"{who} failed unexpectedly: {type(exc).__name__}: {excerpt(str(exc))}", "internal error"


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
            limit = asyncio.timeout(timeout)  # no task per call, unlike wait_for
            try:
                async with limit:
                    yield
            finally:
                if limit.expired():  # this call got no answer in time (not any TimeoutError)
                    self._timeouts += 1


class OverviewService:
    """Gathers model views from the workspace's ports. Keep one per session: it remembers the
    last good value of the ``memory`` most recent calls, so a failing backend shows stale data
    with its age.

    Many models at once (:meth:`overview`, :meth:`version_details`) are read in batches where a
    backend offers them (console.ports ``*_many``, ``snapshot``): one call per port for up to
    ``BATCH_ITEMS`` items, one timeout each; per-item calls otherwise."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = 16,
        memory: int = 128,
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

    def _absent(self, kind: str) -> Section:
        """The section of a kind without a backend: unavailable (why) or not configured."""
        problem = self.ws.problems.get(kind)
        if problem:
            return Section(name=kind, error=problem, kind="unavailable")
        return Section(name=kind, configured=False)

    def _failed(self, kind: str, key: tuple[Any, ...], exc: BaseException, default: T) -> Got[T]:
        """The last good value of ``key`` (or ``default``) and the section saying what failed."""
        message, label = describe_error(exc, kind, self.timeout, self.config)
        if not isinstance(exc, BackendError | TimeoutError):
            log.error("%s backend raised a non-BackendError", kind, exc_info=exc)
        last = self._last.get((kind, *key))
        section = Section(
            name=kind, error=message, kind=label, fetched_at=last[1] if last else None
        )
        return Got(last[0] if last else default, section)

    def _good(self, kind: str, key: tuple[Any, ...], value: T, now: datetime) -> Got[T]:
        value = clean_value(value)  # parameters and metric names come as plain dicts
        self._last.put((kind, *key), value, now)
        return Got(value, _fresh(kind, now))

    async def _call(
        self,
        kind: Kind[P],
        key: tuple[Any, ...],
        make: Callable[[P], Awaitable[T]],
        sections: dict[str, Section],
        default: T,
    ) -> T:
        """Call ``make(backend)`` with a timeout; on failure record the section error and
        return the last good value (or ``default``)."""
        got = await self._one(kind, key, make, default)
        note(sections, got.section)
        return got.value

    async def _one(
        self, kind: Kind[P], key: tuple[Any, ...], make: Callable[[P], Awaitable[T]], default: T
    ) -> Got[T]:
        backend = self.ws.port(kind)
        if backend is None:
            return Got(default, self._absent(kind.name))
        try:
            async with self._gate(kind.name).slot(self.timeout):  # the timeout runs from the send
                value = await make(backend)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(kind.name, key, exc, default)
        return self._good(kind.name, key, value, self.clock())

    async def _many(
        self,
        kind: Kind[P],
        batch: str,
        items: Sequence[K],
        key: Callable[[K], tuple[Any, ...]],
        one: Callable[[P, K], Awaitable[T]],
        default: T,
        arg: Callable[[list[K]], Any] = list,
    ) -> dict[K, Got[T]]:
        """Every item's value and section: through the backend's batch method ``batch`` (one
        call and one timeout per ``BATCH_ITEMS`` items) when it has one, else ``one`` per item.
        The batch method is given ``arg(items)`` and answers by item."""
        unique = list(dict.fromkeys(items))
        backend = self.ws.port(kind)
        if backend is None:
            absent = self._absent(kind.name)
            return {item: Got(default, absent) for item in unique}
        method = getattr(backend, batch, None)
        if not callable(method):
            got = await asyncio.gather(
                *(self._one(kind, key(i), _bind(one, i), default) for i in unique)
            )
            return dict(zip(unique, got, strict=True))
        out: dict[K, Got[T]] = {}
        chunks = [unique[i : i + BATCH_ITEMS] for i in range(0, len(unique), BATCH_ITEMS)]
        await asyncio.gather(
            *(
                self._chunk(kind.name, lambda c: method(arg(c)), c, key, default, out)
                for c in chunks
            )
        )
        return out

    async def _chunk(
        self,
        kind: str,
        method: Callable[[list[K]], Awaitable[Mapping[K, Any]]],
        chunk: list[K],
        key: Callable[[K], tuple[Any, ...]],
        default: T,
        out: dict[K, Got[T]],
    ) -> None:
        answers: Mapping[K, Any] | None = None
        failure: BaseException | None = None
        try:
            async with self._gate(kind).slot(self.timeout):  # one timeout for the whole batch
                answers = await method(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = exc
        if answers is not None and not isinstance(answers, Mapping):  # a plugin's bug
            who = backend_label(self.config, kind)
            failure = InvalidResponse(f"{who} answered a batch with a {type(answers).__name__}")
            answers = None
        now = self.clock()
        for item in chunk:
            value = answers.get(item, _LEFT_OUT) if answers is not None else failure
            if value is _LEFT_OUT:
                who = backend_label(self.config, kind)
                value = InvalidResponse(f"{who} left {item!r} out of its batch answer")
            if isinstance(value, BaseException):
                out[item] = self._failed(kind, key(item), value, default)
            else:
                out[item] = self._good(kind, key(item), cast(T, value), now)

    # -- queries ----------------------------------------------------------------------------

    async def list_models(self) -> tuple[list[Model], Section]:
        """Models from the registry, in config order first, then by name."""
        sections: dict[str, Section] = {}
        none: Sequence[Model] = ()
        found = await self._call(REGISTRY, ("models",), lambda r: r.models(), sections, none)
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
        """Lineage facts for ``versions`` of ``model``, read in batches; without
        ``with_params`` the parameters files are not read (only the registry's params);
        without ``with_ci`` the CI runs are left to :meth:`version_ci` (``ci_read`` False)."""
        found = await self.details_many(
            [(model, v) for v in versions], with_params=with_params, with_ci=with_ci
        )
        return {version: d for (_, version), d in found.items()}

    async def version_ci(self, versions: Sequence[ModelVersion]) -> dict[str, VersionCI]:
        """The CI runs for each version's commit, read in batches."""
        found = await self.ci_many([("", v) for v in versions])
        return {version: runs for (_, version), runs in found.items()}

    async def ci_many(
        self, pairs: Sequence[tuple[str, ModelVersion]]
    ) -> dict[tuple[str, str], VersionCI]:
        """(model, version) -> the CI runs of the version's commit, for many models at once."""
        runs = await self._runs_many([v.commit for _, v in pairs if v.commit])
        out: dict[tuple[str, str], VersionCI] = {}
        for model, v in pairs:
            got = runs.get(v.commit) if v.commit else None
            if got is None:
                out[(model, v.version)] = VersionCI(version=v.version)
            else:
                out[(model, v.version)] = VersionCI(
                    version=v.version, runs=tuple(got.value), section=got.section
                )
        return out

    def _runs_many(self, shas: Sequence[str]) -> Awaitable[dict[str, Got[Sequence[CIRun]]]]:
        return self._many(
            CI,
            "runs_for_many",
            shas,
            lambda sha: ("runs", sha),
            lambda c, sha: c.runs_for(sha),
            (),
        )

    async def details_many(
        self,
        pairs: Sequence[tuple[str, ModelVersion]],
        *,
        with_params: bool = True,
        with_ci: bool = True,
    ) -> dict[tuple[str, str], VersionDetail]:
        """(model, version) -> its lineage facts; one batch per port for all of them."""
        shas = [v.commit for _, v in pairs if v.commit]
        items = [(m, v.commit) for m, v in pairs if v.commit]
        commits, dvs, metrics, params, ci = await asyncio.gather(
            self._many(
                CODE,
                "commits_many",
                shas,
                lambda sha: ("commit", sha),
                lambda c, sha: c.commit(sha),
                None,
            ),
            self._many(
                DATA,
                "data_versions_many",
                items,
                lambda it: ("dv", *it),
                lambda d, it: d.data_version(*it),
                None,
            ),
            self._many(
                DATA,
                "metrics_many",
                items,
                lambda it: ("metrics", *it),
                lambda d, it: d.metrics(*it),
                dict[str, float](),
            ),
            self._many(
                DATA,
                "params_many",
                items,
                lambda it: ("params", *it),
                lambda d, it: d.params(*it),
                dict[str, Any](),
            )
            if with_params
            else _nothing(),
            self._runs_many(shas) if with_ci else _nothing(),
        )
        out: dict[tuple[str, str], VersionDetail] = {}
        for model, version in pairs:
            sha = version.commit
            if not sha:
                out[(model, version.version)] = VersionDetail(
                    model=model,
                    version=version.version,
                    metrics=dict(version.metrics),
                    params=dict(version.params),
                )
                continue
            item = (model, sha)
            parts = [commits[sha], dvs[item], metrics[item], params.get(item), ci.get(sha)]
            sections: dict[str, Section] = {}
            for got in parts:
                if got is not None:
                    note(sections, got.section)
            # Registry-provided facts (MLflow runs) complete what git knows, never override it.
            out[(model, version.version)] = VersionDetail(
                model=model,
                version=version.version,
                commit=commits[sha].value,
                data=dvs[item].value,
                metrics={**version.metrics, **metrics[item].value},
                params={**version.params, **(params[item].value if item in params else {})},
                ci=tuple(ci[sha].value) if sha in ci else (),
                ci_read=with_ci,
                sections=sections,
            )
        return out

    async def health(
        self, model: str, stage: str | None = None
    ) -> tuple[ServingHealth | None, Section]:
        stage = stage or self.config.prod_stage
        got = await self._one(
            METRICS, ("health", model, stage), lambda m: m.health(model, stage), None
        )
        return got.value, got.section

    async def _health_many(self, names: Sequence[str]) -> dict[str, Got[ServingHealth | None]]:
        stage = self.config.prod_stage
        return await self._many(
            METRICS,
            "health_many",
            names,
            lambda n: ("health", n, stage),
            lambda m, n: m.health(n, stage),
            None,
        )

    async def _entries(self, names: Sequence[str]) -> dict[str, Got[RegistryEntry]]:
        """Each model's versions and stages: one registry snapshot when the registry offers
        it, else its versions() and stages() per model."""
        registry = self.ws.registry
        if callable(getattr(registry, "snapshot", None)):
            return await self._many(
                REGISTRY,
                "snapshot",
                names,
                lambda n: ("entry", n),
                _no_single_snapshot,
                _EMPTY,
            )
        return dict(zip(names, await asyncio.gather(*map(self._entry, names)), strict=True))

    async def _entry(self, name: str) -> Got[RegistryEntry]:
        sections: dict[str, Section] = {}
        no_versions: Sequence[ModelVersion] = ()
        no_stages: Sequence[StageAssignment] = ()
        versions, stages = await asyncio.gather(
            self._call(
                REGISTRY, ("versions", name), lambda r: r.versions(name), sections, no_versions
            ),
            self._call(REGISTRY, ("stages", name), lambda r: r.stages(name), sections, no_stages),
        )
        entry = RegistryEntry(versions=tuple(versions), stages=tuple(stages))
        return Got(entry, sections.get("registry") or self._absent("registry"))

    async def _completed(self, plans: list[_Plan], entries: dict[str, Got[RegistryEntry]]) -> None:
        """The wanted versions of incomplete snapshot entries, completed in one batch."""
        todo = {
            (p.name, v.version): v
            for p in plans
            if not entries[p.name].value.complete
            for v in p.wanted
        }
        if not todo:
            return
        got = await self._many(
            REGISTRY,
            "complete_versions",
            list(todo),
            lambda it: ("complete", *it),
            lambda r, it: _complete_one(r, *it),
            None,
            arg=lambda keys: [todo[k] for k in keys],
        )
        by_name = {p.name: p for p in plans}
        for (name, _), result in got.items():
            plan = by_name[name]
            note(plan.sections, result.section)
            if result.value is not None:
                plan.replace(result.value)

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
        the versions in a stage and the newest candidates, and production health. The
        registry's per-model reads give every version complete (the model screen lists them)."""
        m = model if isinstance(model, Model) else Model(name=model)
        health = asyncio.ensure_future(self._health_many([m.name])) if with_health else None
        entry = await self._entry(m.name)
        plan = self._plan(m, entry, candidates_detail)
        [view] = await self._finish(
            [plan], with_details=with_details, with_params=with_params, health=health
        )
        return view

    async def overview(
        self,
        models: Sequence[Model] | None = None,
        *,
        with_details: bool = True,
        with_health: bool = True,
        candidates_detail: int = 3,
        with_params: bool = True,
    ) -> list[ModelView]:
        """A view of every model (or ``models``), read in batches: one registry snapshot, then
        one batch per port for the versions in a stage and the ``candidates_detail`` newest
        candidates (their complete registry facts even ``with_details`` False)."""
        if models is None:
            models, _ = await self.list_models()
        names = [m.name for m in models]
        health = asyncio.ensure_future(self._health_many(names)) if with_health else None
        entries = await self._entries(names)
        plans = [self._plan(m, entries[m.name], candidates_detail) for m in models]
        await self._completed(plans, entries)
        return await self._finish(
            plans, with_details=with_details, with_params=with_params, health=health
        )

    def _plan(self, model: Model, entry: Got[RegistryEntry], candidates_detail: int) -> _Plan:
        name = model.name
        versions = sorted(entry.value.versions, key=lambda v: version_key(v.version))
        stages = self._ordered_stages(name, entry.value.stages)
        prod = next((a.version for a in stages if a.stage == self.config.prod_stage), None)
        candidates = self._candidates(versions, stages, prod)
        wanted_names = {a.version for a in stages if a.version}
        wanted_names.update(candidates[-candidates_detail:] if candidates_detail else [])
        sections: dict[str, Section] = {}
        note(sections, entry.section)
        return _Plan(model, versions, stages, candidates, wanted_names, sections)

    async def _finish(
        self,
        plans: list[_Plan],
        *,
        with_details: bool,
        with_params: bool,
        health: Awaitable[dict[str, Got[ServingHealth | None]]] | None,
    ) -> list[ModelView]:
        details: dict[tuple[str, str], VersionDetail] = {}
        if with_details:
            pairs = [(p.name, v) for p in plans for v in p.wanted]
            details = await self.details_many(pairs, with_params=with_params)
        live = await health if health is not None else {}
        now = self.clock()
        views = []
        for p in plans:
            mine = {v.version: details[(p.name, v.version)] for v in p.wanted if details}
            for d in mine.values():
                for sec in d.sections.values():
                    note(p.sections, sec)
            got = live.get(p.name)
            if got is not None:
                p.sections["metrics"] = got.section
            views.append(
                ModelView(
                    model=p.model,
                    stages=tuple(p.stages),
                    versions=tuple(p.versions),
                    candidates=tuple(p.candidates),
                    details=mine,
                    health=got.value if got is not None else None,
                    sections=p.sections,
                    fetched_at=now,
                )
            )
        return views

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


class Got(Generic[T]):
    """What one read gave: its value (or the last good one, or a default) and its section."""

    __slots__ = ("section", "value")

    def __init__(self, value: T, section: Section) -> None:
        self.value = value
        self.section = section


@functools.lru_cache(maxsize=64)
def _fresh(kind: str, now: datetime) -> Section:
    """The section of a good read at ``now`` (one object for a whole batch: they are many)."""
    return Section(name=kind, fetched_at=now)


def note(sections: dict[str, Section], section: Section) -> None:
    """Record ``section`` in a view's sections: the first error of a kind wins over success."""
    previous = sections.get(section.name)
    if section.ok:
        sections.setdefault(section.name, section)
    elif previous is None or previous.ok:
        sections[section.name] = section


class _Plan:
    """One model on its way to a ModelView: what the registry said, and what to read next."""

    def __init__(
        self,
        model: Model,
        versions: list[ModelVersion],
        stages: list[StageAssignment],
        candidates: list[str],
        wanted: set[str],
        sections: dict[str, Section],
    ) -> None:
        self.model = model
        self.name = model.name
        self.versions = versions
        self.stages = stages
        self.candidates = candidates
        self.wanted = [v for v in versions if v.version in wanted]
        self.sections = sections

    def replace(self, version: ModelVersion) -> None:
        """Put the completed ``version`` in place of the snapshot's."""
        self.versions = [version if v.version == version.version else v for v in self.versions]
        self.wanted = [version if v.version == version.version else v for v in self.wanted]


def _bind(one: Callable[[P, K], Awaitable[T]], item: K) -> Callable[[P], Awaitable[T]]:
    return lambda backend: one(backend, item)


async def _nothing() -> dict[Any, Any]:
    return {}


async def _no_single_snapshot(registry: ModelRegistry, name: str) -> RegistryEntry:
    raise AssertionError("snapshot() is only called in batches")  # pragma: no cover


async def _complete_one(registry: ModelRegistry, model: str, version: str) -> ModelVersion:
    """Without complete_versions: the model's complete versions, this one picked out."""
    for v in await registry.versions(model):
        if v.version == version:
            return cast(ModelVersion, v)
    raise NotFound(f"{model} has no version {version} any more", backend="registry")


_EMPTY = RegistryEntry()
_LEFT_OUT = object()
