"""Immutable domain models shared by backends, services, the CLI and the TUI. No I/O here.

Every string a backend hands a model is cleaned of control characters on validation (``Line``,
``Lines``: console.domain.text), so no port can return one; ``AuditEvent`` keeps its bytes (its
hash covers them) and is escaped where it is shown.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from console.domain.text import Line, Lines, Tree
from console.domain.versions import version_key


class Frozen(BaseModel):
    """Base for every domain object: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Commit(Frozen):
    """One git commit."""

    sha: Line
    short: Line = ""
    author: Line = ""
    author_email: Line = ""
    authored_at: datetime | None = None
    subject: Line = ""

    def model_post_init(self, _context: Any) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.sha[:8])


class DiffStat(Frozen):
    files: int = 0
    insertions: int = 0
    deletions: int = 0


class DataOutput(Frozen):
    """One DVC-tracked output (file or directory) at a commit."""

    path: Line
    md5: Line
    size: int | None = None
    nfiles: int | None = None


class DataVersion(Frozen):
    """The data version of a commit: the DVC outs' hashes recorded there."""

    commit: Line
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
    name: Line
    type: Line = ""
    nullable: bool | None = None


class DataSchema(Frozen):
    """Fields of the training data as declared by the schema file at a commit."""

    commit: Line
    path: Line
    fields: tuple[SchemaField, ...] = ()


class ModelStage(Frozen):
    """A stage of the release pipeline, e.g. staging or production."""

    name: Line
    order: int = 0


class Model(Frozen):
    """A registered model (a GTO artifact, an MLflow registered model, ...)."""

    name: Line
    description: Line = ""
    path: Line = ""
    deprecated: bool = False
    labels: tuple[Line, ...] = ()


class ModelVersion(Frozen):
    """One registered version of a model."""

    model: Line
    version: Line
    commit: Line = ""
    created_by: Line = ""
    created_at: datetime | None = None
    stages: tuple[Line, ...] = ()
    deregistered: bool = False
    source: Line = ""
    tags: dict[Line, Line] = Field(default_factory=dict)
    # Metrics and params the registry itself knows (MLflow runs); the embedded
    # backends leave these empty and the data port supplies them from git.
    metrics: dict[Line, float] = Field(default_factory=dict)
    params: Tree = Field(default_factory=dict)

    @property
    def sort_key(self) -> tuple[int, object]:
        return version_key(self.version)


class StageAssignment(Frozen):
    """A stage pointer: ``stage`` of ``model`` points at ``version`` since ``assigned_at``."""

    model: Line
    stage: Line
    version: Line | None
    assigned_by: Line = ""
    assigned_at: datetime | None = None
    ref: Line = ""  # backend identifier of the assignment, e.g. the git tag name


class RegistryEntry(Frozen):
    """One model as a registry snapshot holds it: its versions (oldest first) and stages.

    ``complete`` False: the versions lack facts the registry reads per version (MLflow's run
    metrics, params and commit); ask ``complete_versions`` for those of the versions you show.
    """

    versions: tuple[ModelVersion, ...] = ()
    stages: tuple[StageAssignment, ...] = ()
    complete: bool = True


class RegistryEventKind(StrEnum):
    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"


class RegistryEvent(Frozen):
    """One entry of the registry's own history (a GTO tag, an MLflow alias change)."""

    model: Line
    kind: RegistryEventKind
    version: Line | None = None
    stage: Line | None = None
    actor: Line = ""
    at: datetime | None = None
    ref: Line = ""
    message: Lines = ""


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
    name: Line
    status: CIStatus = CIStatus.COMPLETED
    conclusion: CIConclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: Line = ""
    tests_total: int | None = None
    tests_failed: int | None = None


class CIRun(Frozen):
    """One CI pipeline run for a commit."""

    id: Line
    pipeline: Line
    commit: Line
    status: CIStatus
    conclusion: CIConclusion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    url: Line = ""
    actor: Line = ""
    jobs: tuple[CIJob, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status is CIStatus.COMPLETED and self.conclusion is CIConclusion.SUCCESS


class MetricPoint(Frozen):
    at: datetime
    value: float


class MetricSeries(Frozen):
    """A time series of one serving metric for one model and stage."""

    model: Line
    stage: Line
    metric: Line
    unit: Line = ""
    points: tuple[MetricPoint, ...] = ()

    @property
    def last(self) -> float | None:
        return self.points[-1].value if self.points else None


class ServingHealth(Frozen):
    """Live health of a deployed model, as the metrics source sees it now."""

    model: Line
    stage: Line
    version: Line | None = None
    latency_p95_ms: float | None = None
    error_rate: float | None = None
    traffic_rps: float | None = None
    prediction_mean: float | None = None
    observed_at: datetime | None = None


class Actor(Frozen):
    """Who acts: the OS user, the sudo user, the SSH client address, backend identities."""

    user: Line
    sudo_user: Line | None = None
    ssh_client: Line | None = None
    backend_identity: Line | None = None
    # A demo workspace's colleague (console.demo.persona) played by this OS user; never
    # outside a demo: the audit journal refuses such an actor anywhere else.
    demo_persona_of: Line | None = None

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

    gate: Line
    passed: bool
    detail: Line
    observed: float | Line | None = None
    threshold: float | Line | None = None
    blocking: bool = True


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class Approval(Frozen):
    """One approver's decision on a promotion request, bound to what they saw."""

    request_id: str
    actor: Line  # from the audit log: a view, shown as one clean line
    decision: Decision
    comment: Line = ""
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
    requested_by: Line  # from the audit log: a view, shown as one clean line
    reason: Line
    created_at: datetime
    state: RequestState = RequestState.PENDING
    approvals: tuple[Approval, ...] = ()
    rollback: bool = False
