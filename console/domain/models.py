"""Immutable domain models shared by backends, services, the CLI and the TUI. No I/O here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from console.domain.versions import version_key


class Frozen(BaseModel):
    """Base for every domain object: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Commit(Frozen):
    """One git commit."""

    sha: str
    short: str = ""
    author: str = ""
    author_email: str = ""
    authored_at: datetime | None = None
    subject: str = ""

    def model_post_init(self, _context: Any) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.sha[:8])


class DiffStat(Frozen):
    files: int = 0
    insertions: int = 0
    deletions: int = 0


class DataOutput(Frozen):
    """One DVC-tracked output (file or directory) at a commit."""

    path: str
    md5: str
    size: int | None = None
    nfiles: int | None = None


class DataVersion(Frozen):
    """The data version of a commit: the DVC outs' hashes recorded there."""

    commit: str
    outputs: tuple[DataOutput, ...] = ()
    rows: int | None = None

    @property
    def digest(self) -> str:
        """A short stable identifier of all outputs together (empty when there is no data)."""
        if not self.outputs:
            return ""
        import hashlib

        joined = "|".join(f"{o.path}:{o.md5}" for o in sorted(self.outputs, key=lambda o: o.path))
        return hashlib.sha256(joined.encode()).hexdigest()[:8]

    @property
    def total_size(self) -> int | None:
        sizes = [o.size for o in self.outputs if o.size is not None]
        return sum(sizes) if sizes else None


class SchemaField(Frozen):
    name: str
    type: str = ""
    nullable: bool | None = None


class DataSchema(Frozen):
    """Fields of the training data as declared by the schema file at a commit."""

    commit: str
    path: str
    fields: tuple[SchemaField, ...] = ()


class ModelStage(Frozen):
    """A stage of the release pipeline, e.g. staging or production."""

    name: str
    order: int = 0


class Model(Frozen):
    """A registered model (a GTO artifact, an MLflow registered model, ...)."""

    name: str
    description: str = ""
    path: str = ""
    deprecated: bool = False
    labels: tuple[str, ...] = ()


class ModelVersion(Frozen):
    """One registered version of a model."""

    model: str
    version: str
    commit: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    stages: tuple[str, ...] = ()
    deregistered: bool = False
    source: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    # Metrics and params the registry itself knows (MLflow runs); the embedded
    # backends leave these empty and the data port supplies them from git.
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[int, object]:
        return version_key(self.version)


class StageAssignment(Frozen):
    """A stage pointer: ``stage`` of ``model`` points at ``version`` since ``assigned_at``."""

    model: str
    stage: str
    version: str | None
    assigned_by: str = ""
    assigned_at: datetime | None = None
    ref: str = ""  # backend identifier of the assignment, e.g. the git tag name


class RegistryEventKind(StrEnum):
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"


class RegistryEvent(Frozen):
    """One entry of the registry's own history (a GTO tag, an MLflow alias change)."""

    model: str
    kind: RegistryEventKind
    version: str | None = None
    stage: str | None = None
    actor: str = ""
    at: datetime | None = None
    ref: str = ""
    message: str = ""


class CIStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class CIConclusion(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    NEUTRAL = "neutral"
    ACTION_REQUIRED = "action_required"


class CIJob(Frozen):
    name: str
    status: CIStatus = CIStatus.COMPLETED
    conclusion: CIConclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: str = ""
    tests_total: int | None = None
    tests_failed: int | None = None


class CIRun(Frozen):
    """One CI pipeline run for a commit."""

    id: str
    pipeline: str
    commit: str
    status: CIStatus
    conclusion: CIConclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: str = ""
    actor: str = ""
    jobs: tuple[CIJob, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status is CIStatus.COMPLETED and self.conclusion is CIConclusion.SUCCESS


class MetricPoint(Frozen):
    at: datetime
    value: float


class MetricSeries(Frozen):
    """A time series of one serving metric for one model and stage."""

    model: str
    stage: str
    metric: str
    unit: str = ""
    points: tuple[MetricPoint, ...] = ()

    @property
    def last(self) -> float | None:
        return self.points[-1].value if self.points else None


class ServingHealth(Frozen):
    """Live health of a deployed model, as the metrics source sees it now."""

    model: str
    stage: str
    version: str | None = None
    latency_p95_ms: float | None = None
    error_rate: float | None = None
    traffic_rps: float | None = None
    prediction_mean: float | None = None
    observed_at: datetime | None = None


class Actor(Frozen):
    """Who acts: the OS user, the sudo user, the SSH client address, backend identities."""

    user: str
    sudo_user: str | None = None
    ssh_client: str | None = None
    backend_identity: str | None = None
    # A demo workspace's colleague (console.demo.persona) played by this OS user; never
    # outside a demo: the audit journal refuses such an actor anywhere else.
    demo_persona_of: str | None = None

    def __str__(self) -> str:
        text = self.user
        if self.sudo_user and self.sudo_user != self.user:
            text = f"{self.sudo_user} (as {self.user})"
        if self.demo_persona_of:
            text += f" (demo persona of {self.demo_persona_of})"
        if self.ssh_client:
            text += f" from {self.ssh_client}"
        return text


class AuditEvent(Frozen):
    """One record of the tamper-evident audit log (hash-chained)."""

    seq: int
    at: datetime
    actor: str
    action: str
    model: str = ""
    version: str = ""
    stage: str = ""
    before: str = ""
    after: str = ""
    reason: str = ""
    result: str = ""
    request_id: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


class GateResult(Frozen):
    """Outcome of one quality gate, with the numbers that decided it."""

    gate: str
    passed: bool
    detail: str
    observed: float | str | None = None
    threshold: float | str | None = None
    blocking: bool = True


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(Frozen):
    """One approver's decision on a promotion request, bound to what they saw."""

    request_id: str
    actor: str
    decision: Decision
    comment: str = ""
    at: datetime
    version: str
    evidence_hash: str = ""


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class PromotionRequest(Frozen):
    """A request to move ``stage`` of ``model`` from ``from_version`` to ``version``."""

    id: str
    model: str
    version: str
    stage: str
    from_version: str | None
    requested_by: str
    reason: str
    created_at: datetime
    state: RequestState = RequestState.PENDING
    approvals: tuple[Approval, ...] = ()
    rollback: bool = False
