"""In-memory ports for the release service's unit tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from console.audit.chain import seal
from console.config import ConsoleConfig, parse_config
from console.domain import (
    Actor,
    AuditEvent,
    CIConclusion,
    CIRun,
    CIStatus,
    Commit,
    DataSchema,
    DataVersion,
    DiffStat,
    Model,
    ModelVersion,
    RegistryEvent,
    RegistryEventKind,
    SchemaField,
    StageAssignment,
)
from console.ports import AuditUnavailable, Conflict, NotFound, Unreachable
from console.services.release import ReleaseService
from console.services.workspace import Workspace

T0 = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)  # a Tuesday


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class Registry:
    name = "fake-registry"

    def __init__(self, versions: dict[str, str], stages: dict[str, str | None]) -> None:
        # versions: version -> author; commit = "c" + version digits
        self.vs = {
            v: ModelVersion(model="m", version=v, commit=commit_of(v), created_by=a)
            for v, a in versions.items()
        }
        self.pointers = dict(stages)
        self.moved_by: dict[str, str] = {s: "seed" for s in stages}
        self.hist: list[RegistryEvent] = [
            RegistryEvent(model="m", kind=RegistryEventKind.ASSIGN, version=v, stage=s)
            for s, v in stages.items()
            if v
        ]
        self.assign_calls = 0
        self.fail_assign: BaseException | None = None
        self.hang_assign = False
        self.apply_before_fail = False
        self.fail_reads = False
        self.before_assign: Any = None

    async def models(self):
        return [Model(name="m")]

    async def versions(self, model):
        if model != "m":
            raise NotFound(f"no model {model}")
        return list(self.vs.values())

    async def stages(self, model):
        if self.fail_reads:
            raise Unreachable("registry down")
        return [
            StageAssignment(model="m", stage=s, version=v, assigned_by=self.moved_by.get(s, ""),
                            assigned_at=T0)
            for s, v in self.pointers.items()
        ]  # fmt: skip

    async def history(self, model):
        return list(self.hist)

    def move(self, stage: str, version: str | None, actor: str = "someone") -> None:
        self.pointers[stage] = version
        self.moved_by[stage] = actor
        self.hist.append(
            RegistryEvent(model="m", kind=RegistryEventKind.ASSIGN, version=version, stage=stage,
                          actor=actor)
        )  # fmt: skip

    async def assign(self, model, version, stage, *, actor, message="", expected=None):
        self.assign_calls += 1
        if self.before_assign is not None:
            self.before_assign()
        if self.hang_assign:
            if self.apply_before_fail:
                self.move(stage, version, actor)
            await asyncio.sleep(3600)
        if self.fail_assign is not None:
            if self.apply_before_fail:
                self.move(stage, version, actor)
            raise self.fail_assign
        actual = self.pointers.get(stage)
        if actual != expected:
            raise Conflict(
                f"{stage} is {actual}", expected=expected, actual=actual,
                changed_by=self.moved_by.get(stage, ""),
            )  # fmt: skip
        self.move(stage, version, actor)
        return StageAssignment(model=model, stage=stage, version=version, assigned_by=actor)


def commit_of(version: str) -> str:
    digits = "".join(ch for ch in version if ch.isdigit())
    return ("c" + digits).ljust(40, "0")


class Audit:
    name = "fake-audit"

    def __init__(self) -> None:
        self.rows: list[AuditEvent] = []
        self.broken = False
        self.fail_after: int | None = None  # fail appends once this many rows exist

    async def append(self, event: AuditEvent) -> AuditEvent:
        if self.broken or (self.fail_after is not None and len(self.rows) >= self.fail_after):
            raise AuditUnavailable("disk full", backend=self.name)
        prev = self.rows[-1].hash if self.rows else ""
        stored, _ = seal(event, len(self.rows) + 1, prev)
        self.rows.append(stored)
        return stored

    async def events(self, *, model=None, since_seq=0, limit=None, **_: Any):
        out = [e for e in self.rows if e.seq > since_seq and (model is None or e.model == model)]
        return out[:limit] if limit is not None else out

    async def head(self):
        return (len(self.rows), self.rows[-1].hash if self.rows else "")

    def actions(self) -> list[tuple[str, str]]:
        return [(e.action, e.result) for e in self.rows]


class Data:
    name = "fake-data"

    def __init__(
        self, metrics: dict[str, dict[str, float]], schemas: dict[str, list[str]] | None = None
    ):
        self.by_commit = {commit_of(v): m for v, m in metrics.items()}
        self.schemas = {commit_of(v): f for v, f in (schemas or {}).items()}

    async def metrics(self, model, commit):
        return dict(self.by_commit.get(commit, {}))

    async def params(self, model, commit):
        return {"lr": 0.1}

    async def data_version(self, model, commit):
        return DataVersion(commit=commit)

    async def schema(self, model, commit):
        fields = self.schemas.get(commit)
        if fields is None:
            return None
        return DataSchema(commit=commit, path="schema.json",
                          fields=tuple(SchemaField(name=f, type="number") for f in fields))  # fmt: skip


class CI:
    name = "fake-ci"

    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = {commit_of(v) for v in (failing or set())}

    async def runs_for(self, commit):
        ok = commit not in self.failing
        return [
            CIRun(id="1", pipeline="train", commit=commit, status=CIStatus.COMPLETED,
                  conclusion=CIConclusion.SUCCESS if ok else CIConclusion.FAILURE)
        ]  # fmt: skip


class Code:
    name = "fake-code"

    def __init__(self, authors: dict[str, str] | None = None) -> None:
        self.authors = {commit_of(v): a for v, a in (authors or {}).items()}

    async def commit(self, rev):
        name = self.authors.get(rev, "")
        return Commit(
            sha=rev, author=name, author_email=f"{name.lower()}@example.com" if name else ""
        )

    async def commits_between(self, base, head):
        return [Commit(sha=head, author="alice", subject="train")]

    async def diffstat(self, base, head):
        return DiffStat(files=2, insertions=10, deletions=3)


class Deployer:
    name = "fake-deploy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail: BaseException | None = None

    async def deploy(self, model, version, stage, *, actor):
        self.calls.append((model, version, stage))
        if self.fail is not None:
            raise self.fail
        return f"deployed {model} {version} to {stage}"


POLICY = """
stages = ["staging", "production"]
[metrics.auc]
direction = "higher"
[metrics.latency]
direction = "lower"
[policy.stages.production]
required_approvals = {approvals}
metric_bounds = [
  {{ metric = "auc", min = 0.8, max_regression = 0.01 }},
  {{ metric = "latency", max = 50.0 }},
]
[roles]
admin = ["erin"]
release_manager = ["dev", "rita", "sam"]
viewer = ["vic"]
default = "viewer"
"""


def config(approvals: int = 1, extra: str = "", top: str = "") -> ConsoleConfig:
    return parse_config(top + POLICY.format(approvals=approvals) + extra, None)


def actor(name: str) -> Actor:
    return Actor(user=name, ssh_client="10.0.0.7")


class World:
    """A workspace of fakes: versions v1.0.0 (prod), v1.1.0, v1.2.0 (bad CI) by alice."""

    def __init__(
        self, approvals: int = 1, extra: str = "", deploy: bool = False, top: str = ""
    ) -> None:
        self.clock = Clock()
        self.registry = Registry(
            {"v1.0.0": "alice", "v1.1.0": "alice", "v1.2.0": "alice", "v1.3.0": "bob"},
            {"production": "v1.0.0", "staging": "v1.1.0"},
        )
        self.audit = Audit()
        self.data = Data(
            {
                "v1.0.0": {"auc": 0.90, "latency": 20},
                "v1.1.0": {"auc": 0.92, "latency": 22},
                "v1.2.0": {"auc": 0.93, "latency": 21},
                "v1.3.0": {"auc": 0.85, "latency": 19},
            }
        )
        self.ci = CI(failing={"v1.2.0"})
        self.code = Code()
        self.deployer = Deployer() if deploy else None
        self.config = config(approvals, extra, top)
        backends: dict[str, Any] = {
            "registry": self.registry, "audit": self.audit, "data": self.data, "ci": self.ci,
            "code": self.code,
        }  # fmt: skip
        if self.deployer is not None:
            backends["deploy"] = self.deployer
        self.ws = Workspace(config=self.config, backends=backends)
        self.anchors = 0
        self._ids = 0

    async def prove(self) -> None:
        """The fakes' log is never anchored (nothing to prove)."""

    async def advance(self) -> None:
        self.anchors += 1

    def _new_id(self) -> str:
        self._ids += 1
        return f"req-{self._ids:04d}"

    def svc(self, user: str, *, read_only: bool = False) -> ReleaseService:
        return ReleaseService(
            self.ws, identity=lambda: actor(user), clock=self.clock, read_only=read_only,
            new_id=self._new_id, anchor=self,
        )  # fmt: skip
