"""Deterministic in-memory backends implementing the console.ports protocols.

Everything is derived from (model, index) with seeded hashing, so data does not depend on the
order of calls, and a model with 10,000 versions costs nothing until a version is asked for.
Each backend can be made slow (``faults.latency[kind] = 0.2``) or failing on demand
(``faults.fail("ci", Unreachable(...))``).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from console.audit.chain import StoredRecord, canonical_bytes, seal, verify_chain
from console.config import ConsoleConfig, MetricSpec, ModelConfig
from console.config.model import (
    LiveGateConfig,
    MetricBound,
    PolicyConfig,
    RolesConfig,
    RollbackPolicy,
    SLOConfig,
    StagePolicy,
    UIConfig,
)
from console.domain import (
    AuditEvent,
    CIConclusion,
    CIJob,
    CIRun,
    CIStatus,
    Commit,
    DataOutput,
    DataSchema,
    DataVersion,
    DiffStat,
    LiveWindow,
    MetricPoint,
    MetricSeries,
    Model,
    ModelVersion,
    RegistryEvent,
    RegistryEventKind,
    SchemaField,
    ServingHealth,
    ShadowFigures,
    StageAssignment,
)
from console.ports import BackendError, NotFound, Unreachable
from console.services.workspace import Workspace

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
AUTHORS = ("alice", "bob", "chen", "dana", "emeka")
COMMITS_PER_VERSION = 3

# name -> (description, key metrics with (base, step, direction))
CATALOG: dict[str, tuple[str, dict[str, tuple[float, float, str]]]] = {
    "churn-predictor": (
        "Monthly churn risk per subscriber",
        {"auc": (0.861, 0.0031, "higher"), "f1": (0.702, 0.004, "higher")},
    ),
    "fraud-detector": (
        "Card-not-present fraud scoring",
        {"recall": (0.781, 0.005, "higher"), "precision": (0.912, -0.001, "higher")},
    ),
    "price-ranker": (
        "Ranks offers on the pricing page",
        {"ndcg_at_10": (0.412, 0.003, "higher"), "latency_ms": (41.0, -0.6, "lower")},
    ),
    "demand-forecast": (
        "Daily demand per store and SKU",
        {"mape": (0.184, -0.002, "lower"), "rmse": (12.4, -0.09, "lower")},
    ),
}


def _rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest())


def _sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Faults:
    """Per-kind failure and latency switches, plus a call counter."""

    errors: dict[str, BackendError] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # calls wait until set

    def fail(self, kind: str, error: BackendError | None = None) -> None:
        self.errors[kind] = error or Unreachable(
            f"{kind} peer did not answer", backend=f"fake-{kind}", hint="check the fake"
        )

    def heal(self, kind: str) -> None:
        self.errors.pop(kind, None)

    async def enter(self, kind: str, method: str) -> None:
        self.calls[f"{kind}.{method}"] += 1
        gate = self.gates.get(kind)
        if gate is not None:
            await gate.wait()
        delay = self.latency.get(kind, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if kind in self.errors:
            raise self.errors[kind]


@dataclass
class FakeModel:
    name: str
    description: str
    metrics: dict[str, tuple[float, float, str]]
    count: int
    prod: int | None  # index of the production version
    staging: int | None
    offset: int = 0  # days before NOW of the newest version
    deprecated: bool = False  # retired in the registry (gto's @deprecated)

    def version_name(self, i: int) -> str:
        return f"v1.{i}.0"

    def index(self, version: str) -> int:
        try:
            i = int(version.split(".")[1])
        except (IndexError, ValueError):
            raise NotFound(f"{self.name}: no version {version}", backend="fake-registry") from None
        if not 0 <= i < self.count:
            raise NotFound(f"{self.name}: no version {version}", backend="fake-registry")
        return i

    def created_at(self, i: int) -> datetime:
        return NOW - timedelta(days=self.offset + (self.count - 1 - i) * 2, hours=3 + i % 5)

    def commit_sha(self, i: int, k: int = COMMITS_PER_VERSION - 1) -> str:
        return _sha(self.name, "commit", i * COMMITS_PER_VERSION + k)


class FakeWorld:
    """The seeded data every fake backend reads from."""

    def __init__(
        self,
        n_models: int = 4,
        versions: int = 15,
        *,
        big_model_versions: int | None = None,
        faults: Faults | None = None,
        incident: bool = False,
    ) -> None:
        self.faults = faults or Faults()
        # The INC story: staging serves shadow traffic, and price-ranker's staging version was
        # rolled back from production (its shadow figures breach the SLOs).
        self.incident = incident
        self.breaching: set[tuple[str, str]] = set()  # (model, version) serving badly
        self.now = lambda: NOW  # when live figures are observed (tests may pass their clock)
        self.models: dict[str, FakeModel] = {}
        names = list(CATALOG)
        for i in range(n_models):
            base = names[i % len(names)]
            name = base if i < len(names) else f"{base}-{i:04d}"
            desc, metrics = CATALOG[base]
            count = versions
            if big_model_versions and i == 0:
                count = big_model_versions
            prod: int | None = count - 5 - (i % 3)
            staging: int | None = count - 2 - (i % 2)
            if base == "demand-forecast":
                prod = None  # a young model: nothing in production yet
                staging = count - 1
            self.models[name] = FakeModel(name, desc, metrics, count, prod, staging, offset=i % 3)
        self.commits: dict[str, tuple[str, int]] = {}
        for m in self.models.values():
            for i in range(m.count):
                self.commits[m.commit_sha(i)] = (m.name, i)
        if incident and "price-ranker" in self.models:
            ranker = self.models["price-ranker"]
            if ranker.staging is not None:
                self.breaching.add(("price-ranker", ranker.version_name(ranker.staging)))
        self.audit_log: list[AuditEvent] = []
        self.assigned: list[RegistryEvent] = []  # stage moves made through FakeRegistry.assign
        self._versions: dict[str, tuple[Any, list[ModelVersion]]] = {}
        self._seed_audit()

    def model(self, name: str) -> FakeModel:
        if name not in self.models:
            raise NotFound(f"no model {name!r}", backend="fake-registry")
        return self.models[name]

    def locate(self, sha: str) -> tuple[FakeModel, int]:
        if sha not in self.commits:
            raise NotFound(f"unknown commit {sha[:8]}", backend="fake-git")
        name, i = self.commits[sha]
        return self.models[name], i

    # -- facts ---------------------------------------------------------------------------------

    def author(self, m: FakeModel, j: int) -> str:
        return AUTHORS[zlib.crc32(f"{m.name}:author:{j}".encode()) % len(AUTHORS)]

    def versions(self, m: FakeModel) -> list[ModelVersion]:
        key = (m.name, m.count, m.prod, m.staging)
        if self._versions.get(m.name, (None,))[0] != key:
            self._versions[m.name] = (key, [self.version(m, i) for i in range(m.count)])
        return list(self._versions[m.name][1])

    def version(self, m: FakeModel, i: int) -> ModelVersion:
        stages = tuple(s for s, idx in (("staging", m.staging), ("production", m.prod)) if idx == i)
        return ModelVersion(
            model=m.name,
            version=m.version_name(i),
            commit=m.commit_sha(i),
            created_by=self.author(m, i * COMMITS_PER_VERSION + 2),
            created_at=m.created_at(i),
            stages=stages,
        )

    def commit(self, m: FakeModel, j: int) -> Commit:
        subjects = ("Tune learning rate", "Add tenure feature", "Fix label leakage",
                    "Retrain on March data", "Refactor feature pipeline", "Bump xgboost",
                    "Add calibration step", "Drop stale column")  # fmt: skip
        return Commit(
            sha=_sha(m.name, "commit", j),
            author=self.author(m, j),
            author_email=f"{self.author(m, j)}@example.com",
            authored_at=m.created_at(j // COMMITS_PER_VERSION)
            - timedelta(hours=COMMITS_PER_VERSION - j % COMMITS_PER_VERSION),
            subject=subjects[_rng(m.name, "subject", j).randrange(len(subjects))],
        )

    def metric_values(self, m: FakeModel, i: int) -> dict[str, float]:
        r = _rng(m.name, "metrics", i)
        return {
            k: round(base + step * i + r.uniform(-abs(step), abs(step)) * 0.8, 4)
            for k, (base, step, _d) in m.metrics.items()
        }

    def params(self, m: FakeModel, i: int) -> dict[str, Any]:
        p: dict[str, Any] = {
            "train.learning_rate": round(0.1 - 0.005 * (i // 2), 3),
            "train.max_depth": 6 + i // 5,
            "train.n_estimators": 100 + 20 * (i // 3),
            "features.window_days": 30,
        }
        if i >= m.count - 3:
            p["train.dropout"] = 0.2
        return p

    def schema(self, m: FakeModel, i: int) -> DataSchema:
        fields = [
            SchemaField(name="customer_id", type="string", nullable=False),
            SchemaField(name="tenure_months", type="int", nullable=False),
            SchemaField(
                name="monthly_charges",
                type="double" if i >= m.count - 2 else "float",
                nullable=False,
            ),
            SchemaField(name="region", type="string", nullable=True),
        ]
        if i >= m.count - 3:
            fields.append(SchemaField(name="support_calls", type="int", nullable=True))
        if i < m.count - 6:
            fields.append(SchemaField(name="legacy_segment", type="string", nullable=True))
        return DataSchema(
            commit=m.commit_sha(i), path=f"data/{m.name}/schema.json", fields=tuple(fields)
        )

    def data(self, m: FakeModel, i: int) -> DataVersion:
        epoch = i // 3
        return DataVersion(
            commit=m.commit_sha(i),
            outputs=(
                DataOutput(
                    path=f"data/{m.name}/train.parquet",
                    md5=_sha(m.name, "train", epoch)[:32],
                    size=48_000_000 + 1_250_000 * epoch,
                ),
                DataOutput(
                    path=f"data/{m.name}/holdout.parquet",
                    md5=_sha(m.name, "holdout", epoch // 2)[:32],
                    size=6_000_000 + 100_000 * (epoch // 2),
                ),
            ),
            rows=1_200_000 + 31_000 * epoch,
        )

    def runs(self, m: FakeModel, i: int) -> list[CIRun]:
        sha = m.commit_sha(i)
        started = m.created_at(i) - timedelta(minutes=50)
        newest = i == m.count - 1
        failing = newest and m.name.startswith("fraud")
        running = newest and m.name.startswith("price")
        jobs = []
        for n, name in enumerate(("lint", "unit-tests", "train", "evaluate")):
            status, conclusion = CIStatus.COMPLETED, CIConclusion.SUCCESS
            if failing and name == "evaluate":
                conclusion = CIConclusion.FAILURE
            if running and name in ("train", "evaluate"):
                status, conclusion = CIStatus.IN_PROGRESS, None
            jobs.append(
                CIJob(
                    name=name,
                    status=status,
                    conclusion=conclusion,
                    started_at=started + timedelta(minutes=4 * n),
                    finished_at=None
                    if conclusion is None
                    else started + timedelta(minutes=4 * n + 3),
                    url=f"https://ci.example.com/{m.name}/{i}/{name}",
                    tests_total=120 if name == "unit-tests" else None,
                    tests_failed=0 if name == "unit-tests" else None,
                )
            )
        run_status = CIStatus.IN_PROGRESS if running else CIStatus.COMPLETED
        run_conclusion = (
            None if running else CIConclusion.FAILURE if failing else CIConclusion.SUCCESS
        )
        runs = [
            CIRun(
                id=f"{m.name}-{i}-2",
                pipeline="train-and-evaluate",
                commit=sha,
                status=run_status,
                conclusion=run_conclusion,
                started_at=started,
                finished_at=None if running else started + timedelta(minutes=17),
                url=f"https://ci.example.com/{m.name}/runs/{i}",
                actor=self.author(m, i * COMMITS_PER_VERSION + 2),
                jobs=tuple(jobs),
            )
        ]
        if i % 4 == 1:  # an earlier flaky attempt
            runs.append(
                runs[0].model_copy(
                    update={
                        "id": f"{m.name}-{i}-1",
                        "conclusion": CIConclusion.FAILURE,
                        "status": CIStatus.COMPLETED,
                        "started_at": started - timedelta(hours=1),
                        "finished_at": started - timedelta(minutes=48),
                        "jobs": (),
                    }
                )
            )
        return runs

    def stage_history(self, m: FakeModel) -> list[RegistryEvent]:
        events: list[RegistryEvent] = []
        for i in range(max(0, m.count - 40), m.count):
            events.append(
                RegistryEvent(
                    model=m.name,
                    kind=RegistryEventKind.REGISTER,
                    version=m.version_name(i),
                    actor=self.author(m, i * COMMITS_PER_VERSION + 2),
                    at=m.created_at(i),
                    ref=f"{m.name}@{m.version_name(i)}",
                )
            )
        for stage, target in (("production", m.prod), ("staging", m.staging)):
            if target is None:
                continue
            steps = (
                [target - 4, target - 2, target] if stage == "production" else [target - 1, target]
            )
            for n, i in enumerate(s for s in steps if s >= 0):
                events.append(
                    RegistryEvent(
                        model=m.name,
                        kind=RegistryEventKind.ASSIGN,
                        version=m.version_name(i),
                        stage=stage,
                        actor=AUTHORS[(n + 3) % len(AUTHORS)],
                        at=m.created_at(i) + timedelta(days=1, hours=2),
                        ref=f"{m.name}#{stage}#{n + 1}",
                    )
                )
        if self.incident and m.name == "price-ranker" and m.prod is not None and m.staging:
            at = NOW - timedelta(hours=5)
            for version, actor, minutes, message in (
                (m.staging, "dana", -300, "Release"),
                (m.prod, "erin", 0, "Rollback after INC-7: p95 912 ms, 6% errors"),
            ):
                events.append(
                    RegistryEvent(
                        model=m.name, kind=RegistryEventKind.ASSIGN,
                        version=m.version_name(version), stage="production", actor=actor,
                        at=at + timedelta(minutes=minutes), ref=f"{m.name}#production#9",
                        message=message,
                    )
                )  # fmt: skip
        events.sort(key=lambda e: e.at or NOW)
        return events + [e for e in self.assigned if e.model == m.name]

    def serving(self, m: FakeModel, stage: str) -> str | None:
        """The version ``stage`` serves live (staging only in the incident story)."""
        if stage == "production" and m.prod is not None:
            return m.version_name(m.prod)
        if self.incident and stage == "staging" and m.staging is not None:
            return m.version_name(m.staging)
        return None

    def live_window(self, m: FakeModel, stage: str, version: str, seconds: float) -> LiveWindow:
        """Figures over ``seconds``: production's from its series; staging's a little slower;
        a breaching version's bad (p95 912 ms, 6 % errors; price-ranker's staging version in
        the incident story)."""
        last = {k: self.series(m, k, 60).points[-1].value
                for k in ("latency_p95_ms", "error_rate", "traffic_rps")}  # fmt: skip
        requests = round(last["traffic_rps"] * seconds)
        p95, rate, differ, scores = (
            last["latency_p95_ms"],
            last["error_rate"],
            0.03,
            (30, 40, 20, 10),
        )
        if stage != "production":
            p95, differ, scores = p95 * 1.08, 0.04, (28, 40, 22, 10)
        if (m.name, version) in self.breaching:
            p95, rate, differ, scores = 912.0, 0.06, 0.22, (10, 25, 35, 30)
        total, cumulative = 0.0, []
        for bound, share in zip((0.25, 0.5, 0.75, 1.0), scores, strict=True):
            total += requests * share / 100
            cumulative.append((bound, total))
        shadow = None
        if stage != "production" and m.prod is not None:
            compared = round(requests * 0.97)
            shadow = ShadowFigures(
                baseline_version=m.version_name(m.prod), compared=compared,
                differ=round(compared * differ),
            )  # fmt: skip
        return LiveWindow(
            model=m.name, stage=stage, version=version, seconds=seconds, requests=requests,
            errors=round(requests * rate), latency_p95_ms=round(p95, 1),
            scores=tuple(cumulative), shadow=shadow, observed_at=self.now(),
        )  # fmt: skip

    def _seed_audit(self) -> None:
        seq = 0
        for m in list(self.models.values())[:8]:
            if m.prod is None:
                continue
            at = m.created_at(m.prod) + timedelta(days=1, hours=1, minutes=40)
            for action, actor, extra in (
                ("approve", "bob", {"reason": "gates green, canary clean"}),
                ("promote", "dana", {"reason": "weekly release"}),
            ):
                seq += 1
                self.append_audit(
                    AuditEvent(
                        seq=seq,
                        at=at + timedelta(minutes=seq % 7),
                        actor=actor,
                        action=action,
                        model=m.name,
                        version=m.version_name(m.prod),
                        stage="production",
                        before=m.version_name(m.prod - 2) if action == "promote" else "",
                        after=m.version_name(m.prod) if action == "promote" else "",
                        result="ok",
                        **extra,
                    )
                )

    def append_audit(self, event: AuditEvent) -> AuditEvent:
        """Append ``event`` to the log, hash-chained like the real stores."""
        prev = self.audit_log[-1].hash if self.audit_log else ""
        stored, _ = seal(event, len(self.audit_log) + 1, prev)
        self.audit_log.append(stored)
        return stored

    def tamper(self, seq: int, **changes: Any) -> None:
        """Edit a stored event behind the chain's back (its hash is kept)."""
        i = next(n for n, e in enumerate(self.audit_log) if e.seq == seq)
        self.audit_log[i] = self.audit_log[i].model_copy(update=changes)

    def series(self, m: FakeModel, metric: str, points: int) -> MetricSeries:
        phase = _rng(m.name, "phase").uniform(0, math.tau)
        base, amp, unit = {
            "latency_p95_ms": (85.0, 18.0, "ms"),
            "error_rate": (0.004, 0.002, ""),
            "traffic_rps": (140.0, 45.0, "req/s"),
            "prediction_mean": (0.31, 0.04, ""),
        }[metric]
        pts = []
        for k in range(points):
            t = NOW - timedelta(seconds=15 * (points - 1 - k))
            wobble = _rng(m.name, metric, k).uniform(-0.25, 0.25)
            value = base + amp * (math.sin(phase + k / 6) + wobble)
            pts.append(MetricPoint(at=t, value=round(max(value, 0.0), 5)))
        return MetricSeries(
            model=m.name, stage="production", metric=metric, unit=unit, points=tuple(pts)
        )


class _Fake:
    kind = ""

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.name = f"fake-{self.kind}"

    async def _enter(self, method: str) -> None:
        await self.world.faults.enter(self.kind, method)

    async def check(self) -> str:
        await self._enter("check")
        return f"{self.name}: ok"

    async def aclose(self) -> None:
        self.world.faults.calls[f"{self.kind}.aclose"] += 1


class FakeCode(_Fake):
    kind = "code"

    async def commit(self, rev: str) -> Commit:
        await self._enter("commit")
        m, i = self.world.locate(rev)
        return self.world.commit(m, i * COMMITS_PER_VERSION + COMMITS_PER_VERSION - 1)

    async def commits_between(self, base: str | None, head: str) -> Sequence[Commit]:
        await self._enter("commits_between")
        m, hi = self.world.locate(head)
        lo = self.world.locate(base)[1] if base else -1
        start = (lo + 1) * COMMITS_PER_VERSION if base else max(0, (hi - 30) * COMMITS_PER_VERSION)
        end = (hi + 1) * COMMITS_PER_VERSION
        return [self.world.commit(m, j) for j in range(end - 1, start - 1, -1)]

    async def diffstat(self, base: str, head: str) -> DiffStat:
        await self._enter("diffstat")
        _, lo = self.world.locate(base)
        _m, hi = self.world.locate(head)
        n = abs(hi - lo)
        return DiffStat(files=2 + 3 * n, insertions=40 * n + 7, deletions=11 * n)


class FakeRegistry(_Fake):
    kind = "registry"

    async def models(self) -> Sequence[Model]:
        await self._enter("models")
        return [
            Model(
                name=m.name,
                description=m.description,
                path=f"models/{m.name}",
                deprecated=m.deprecated,
            )
            for m in self.world.models.values()
        ]

    async def versions(self, model: str) -> Sequence[ModelVersion]:
        await self._enter("versions")
        return self.world.versions(self.world.model(model))

    async def stages(self, model: str) -> Sequence[StageAssignment]:
        await self._enter("stages")
        m = self.world.model(model)
        out = []
        for stage, i in (("staging", m.staging), ("production", m.prod)):
            if i is None:
                continue
            out.append(
                StageAssignment(
                    model=model,
                    stage=stage,
                    version=m.version_name(i),
                    assigned_by="dana",
                    assigned_at=m.created_at(i) + timedelta(days=1, hours=2),
                    ref=f"{model}#{stage}#3",
                )
            )
        return out

    async def history(self, model: str) -> Sequence[RegistryEvent]:
        await self._enter("history")
        return self.world.stage_history(self.world.model(model))

    async def assign(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        actor: str,
        message: str = "",
        expected: str | None = None,
    ) -> StageAssignment:
        await self._enter("assign")
        m = self.world.model(model)
        i = m.index(version)
        if stage == "production":
            m.prod = i
        else:
            m.staging = i
        self.world.assigned.append(
            RegistryEvent(model=model, kind=RegistryEventKind.ASSIGN, version=version,
                          stage=stage, actor=actor, at=NOW, ref=f"{model}#{stage}#x")
        )  # fmt: skip
        return StageAssignment(
            model=model, stage=stage, version=version, assigned_by=actor, assigned_at=NOW
        )


class FakeData(_Fake):
    kind = "data"

    async def data_version(self, model: str, commit: str) -> DataVersion:
        await self._enter("data_version")
        m, i = self.world.locate(commit)
        return self.world.data(m, i)

    async def params(self, model: str, commit: str) -> dict[str, Any]:
        await self._enter("params")
        m, i = self.world.locate(commit)
        return self.world.params(m, i)

    async def metrics(self, model: str, commit: str) -> dict[str, float]:
        await self._enter("metrics")
        m, i = self.world.locate(commit)
        return self.world.metric_values(m, i)

    async def schema(self, model: str, commit: str) -> DataSchema | None:
        await self._enter("schema")
        m, i = self.world.locate(commit)
        return self.world.schema(m, i)


class FakeCI(_Fake):
    kind = "ci"

    async def runs_for(self, commit: str) -> Sequence[CIRun]:
        await self._enter("runs_for")
        m, i = self.world.locate(commit)
        return self.world.runs(m, i)


class FakeMetrics(_Fake):
    kind = "metrics"

    def _serving(self, model: str, stage: str) -> tuple[FakeModel, str]:
        m = self.world.model(model)
        version = self.world.serving(m, stage)
        if version is None:
            raise NotFound(f"{model} has nothing serving in {stage}", backend="fake-metrics")
        return m, version

    async def health(self, model: str, stage: str) -> ServingHealth:
        await self._enter("health")
        m, version = self._serving(model, stage)
        last = {k: self.world.series(m, k, 60).points[-1].value for k in (
            "latency_p95_ms", "error_rate", "traffic_rps", "prediction_mean")}  # fmt: skip
        if stage != "production":
            window = self.world.live_window(m, stage, version, 60)
            last["latency_p95_ms"] = window.latency_p95_ms or 0.0
            last["error_rate"] = window.error_rate or 0.0
        return ServingHealth(
            model=model,
            stage=stage,
            version=version,
            latency_p95_ms=last["latency_p95_ms"],
            error_rate=last["error_rate"],
            traffic_rps=last["traffic_rps"],
            prediction_mean=last["prediction_mean"],
            observed_at=NOW,
        )

    async def series(
        self,
        model: str,
        stage: str,
        metric: str,
        *,
        since: datetime | None = None,
        points: int = 60,
        version: str | None = None,
    ) -> MetricSeries:
        await self._enter("series")
        m, serving = self._serving(model, stage)
        series = self.world.series(m, metric, points)
        scale = 1.08 if stage != "production" and metric == "latency_p95_ms" else 1.0
        if (m.name, serving) in self.world.breaching and metric in ("latency_p95_ms", "error_rate"):
            scale = {"latency_p95_ms": 10.5, "error_rate": 15.0}[metric]
        if scale == 1.0:
            return series.model_copy(update={"stage": stage})
        points_ = tuple(p.model_copy(update={"value": round(p.value * scale, 5)})
                        for p in series.points)  # fmt: skip
        return series.model_copy(update={"stage": stage, "points": points_})

    async def window(
        self, model: str, stage: str, *, version: str | None = None, seconds: float = 600.0
    ) -> LiveWindow:
        await self._enter("window")
        m, serving = self._serving(model, stage)
        if version is not None and version != serving:
            return LiveWindow(model=model, stage=stage, version=version, seconds=seconds,
                              requests=0, errors=0, observed_at=NOW)  # fmt: skip
        return self.world.live_window(m, stage, serving, seconds)


class FakeAudit(_Fake):
    kind = "audit"

    async def append(self, event: AuditEvent) -> AuditEvent:
        await self._enter("append")
        return self.world.append_audit(event)

    async def events(
        self,
        *,
        model: str | None = None,
        since_seq: int = 0,
        limit: int | None = None,
        tail: bool = False,
    ) -> Sequence[AuditEvent]:
        await self._enter("events")
        out = [e for e in self.world.audit_log if e.seq > since_seq and model in (None, e.model)]
        if limit:
            return out[-limit:] if tail else out[:limit]
        return out

    async def head(self) -> tuple[int, str]:
        await self._enter("head")
        log = self.world.audit_log
        return len(log), log[-1].hash if log else ""

    async def verify(self, anchors: Sequence[Any] = ()) -> Any:
        """The real chain check over the stored events (a tampered one fails it)."""
        await self._enter("verify")
        records = [
            StoredRecord(seq=e.seq, hash=e.hash, record=canonical_bytes(e))
            for e in self.world.audit_log
        ]
        return verify_chain(records, anchors=anchors)


def fake_config(
    world: FakeWorld, *, refresh_seconds: float = 5.0, theme: str = "dark", slo: bool = False
) -> ConsoleConfig:
    """A config naming the fake workspace's first models with their key metrics; ``slo``: SLOs
    (p95 500 ms, 2 % errors) and live gates on production."""
    models: dict[str, ModelConfig] = {}
    specs: dict[str, MetricSpec] = {}
    for m in list(world.models.values())[: len(CATALOG)]:
        models[m.name] = ModelConfig(description=m.description, key_metrics=list(m.metrics))
        for k, (_b, _s, direction) in m.metrics.items():
            specs[k] = MetricSpec(direction=direction)  # type: ignore[arg-type]
    return ConsoleConfig(
        workspace={"name": "acme-ml", "path": "."},  # type: ignore[arg-type]
        models=models,
        metrics=specs,
        ui=UIConfig(theme=theme, refresh_seconds=max(refresh_seconds, 0.5)),
        policy=LIVE_POLICY if slo else RELEASE_POLICY,
        roles=ROLES,
        slo=SLOConfig(p95_ms=500, error_rate=0.02, min_requests=100) if slo else SLOConfig(),
    )


# Production needs one approval from someone who neither requested nor wrote the version;
# rita and sam are release managers who wrote nothing, vic only looks, erin is the admin.
RELEASE_POLICY = PolicyConfig(
    stages={
        "production": StagePolicy(
            required_approvals=1,
            metric_bounds=[MetricBound(metric="auc", min=0.8, max_regression=0.02)],
        )
    },
    rollback=RollbackPolicy(confirm_model_name=True),
)
LIVE_POLICY = RELEASE_POLICY.model_copy(
    update={
        "stages": {
            "production": RELEASE_POLICY.stages["production"].model_copy(
                update={
                    "live": LiveGateConfig(
                        max_p95_ms=500,
                        max_error_rate=0.02,
                        max_p95_regression_ms=100,
                        max_disagreement=0.1,
                    )
                }
            )
        }
    }
)
ROLES = RolesConfig(
    admin=["erin"], release_manager=["rita", "sam"], viewer=["vic"], default="release_manager"
)


def make_workspace(world: FakeWorld | None = None, **config: Any) -> tuple[Workspace, FakeWorld]:
    """A Workspace over fresh fakes of every kind (no deploy)."""
    world = world or FakeWorld()
    backends = {
        "code": FakeCode(world),
        "registry": FakeRegistry(world),
        "data": FakeData(world),
        "ci": FakeCI(world),
        "metrics": FakeMetrics(world),
        "audit": FakeAudit(world),
    }
    return Workspace(config=fake_config(world, **config), backends=backends), world


def console_app(config: ConsoleConfig, **kw: Any) -> Any:
    """A ConsoleApp as the tests build it: the launch options (model=, theme=, read_only=, ...)
    among the other keywords."""
    import dataclasses

    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch

    names = {f.name for f in dataclasses.fields(Launch)}
    launch = Launch(**{k: kw.pop(k) for k in list(kw) if k in names})
    return ConsoleApp(config, launch=launch, **kw)


class MutableClock:
    """A frozen clock tests can move forward."""

    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)
