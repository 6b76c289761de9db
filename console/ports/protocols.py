"""One async Protocol per backend kind. Backends return domain objects or raise BackendError."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from console.domain import (
    AuditEvent,
    CIRun,
    Commit,
    DataSchema,
    DataVersion,
    DiffStat,
    LiveWindow,
    MetricSeries,
    Model,
    ModelVersion,
    RegistryEntry,
    RegistryEvent,
    ServingHealth,
    StageAssignment,
)
from console.ports.errors import BackendError

K = TypeVar("K")
T = TypeVar("T")
Batch = Mapping[K, T | BackendError]
"""The answer to a batch read: per item its value, or the BackendError its own read would
have raised. An item missing from the mapping is an invalid response for that item."""


@runtime_checkable
class Backend(Protocol):
    """Common life cycle of every backend instance."""

    name: str

    async def check(self) -> str:
        """Probe the peer; return a one-line description of what works or raise BackendError."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class CodeRepo(Backend, Protocol):
    """The code repository (git)."""

    async def commit(self, rev: str) -> Commit: ...

    async def commits_between(self, base: str | None, head: str) -> Sequence[Commit]:
        """Commits reachable from ``head`` but not from ``base`` (newest first)."""
        ...

    async def diffstat(self, base: str, head: str) -> DiffStat: ...


@runtime_checkable
class ModelRegistry(Backend, Protocol):
    """Registered models, their versions and stage pointers.

    Optional: ``async def check_move(model, stage) -> None`` raises what ``assign`` would
    refuse (NotFound for a stage the registry does not allow, Deprecated for a retired
    model); the release service asks it before it records anything.
    """

    async def models(self) -> Sequence[Model]: ...

    async def versions(self, model: str) -> Sequence[ModelVersion]:
        """All versions of ``model``, oldest first (semantic order)."""
        ...

    async def stages(self, model: str) -> Sequence[StageAssignment]:
        """Current stage pointers of ``model`` (one per stage that has ever been assigned)."""
        ...

    async def history(self, model: str) -> Sequence[RegistryEvent]:
        """The registry's own record of what happened to ``model``, oldest first."""
        ...

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
        """Point ``stage`` at ``version``.

        ``expected`` is the version the caller saw in ``stage`` (None: empty). Backends with
        compare-and-set raise Conflict when the stage moved; others re-read before/after.
        """
        ...


@runtime_checkable
class DataVersions(Backend, Protocol):
    """Data versions, params, metrics and schema of ``model`` as recorded at a commit."""

    async def data_version(self, model: str, commit: str) -> DataVersion:
        """The DVC outs' hashes (and rows, when a stats file says) at ``commit``."""
        ...

    async def params(self, model: str, commit: str) -> dict[str, Any]:
        """Training parameters (params.yaml), nested dicts flattened to dotted keys."""
        ...

    async def metrics(self, model: str, commit: str) -> dict[str, float]:
        """Evaluation metrics (metrics JSON/YAML), flattened to dotted keys; numbers only."""
        ...

    async def schema(self, model: str, commit: str) -> DataSchema | None:
        """The schema file's fields at ``commit``, None when the model declares none."""
        ...


@runtime_checkable
class CIProvider(Backend, Protocol):
    """CI pipeline runs."""

    async def runs_for(self, commit: str) -> Sequence[CIRun]:
        """Runs for ``commit``, newest first."""
        ...


@runtime_checkable
class MetricsSource(Backend, Protocol):
    """Live serving metrics."""

    async def health(self, model: str, stage: str) -> ServingHealth: ...

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
        """``metric`` is one of latency_p95_ms, error_rate, traffic_rps, prediction_mean.
        With ``version`` (keyword, passed only when set) only that version's series."""
        ...

    async def window(
        self, model: str, stage: str, *, version: str | None = None, seconds: float = 600.0
    ) -> LiveWindow:
        """Counts over the last ``seconds`` (of ``version`` only, when given): requests, errors,
        p95, score histogram, shadow decisions. Optional for plugins: without it, health
        verdicts and live gates say "unknown" (docs/plugins.md)."""
        ...


@runtime_checkable
class Deployer(Backend, Protocol):
    """The deploy effect of a promotion or rollback."""

    async def deploy(self, model: str, version: str, stage: str, *, actor: str) -> str:
        """Run the effect; return a one-line description (e.g. a run URL) or raise BackendError."""
        ...


@runtime_checkable
class AuditStore(Backend, Protocol):
    """Append-only, hash-chained audit log."""

    async def append(self, event: AuditEvent) -> AuditEvent:
        """Durably append; returns the stored event with seq, prev_hash and hash filled in.

        The per-stage intent lock (docs/team.md): an ``intent`` event whose ``details.lock``
        is true takes the lock of (event.model, event.stage) in the same transaction as the
        append, or raises StageBusy (nothing appended) when an earlier locking intent of that
        stage has no outcome yet. An ``outcome`` event releases the intent named by its
        ``details.intent_seq``. The lock is derived from the records alone, so a store can
        rebuild it from its log.
        """
        ...

    async def open_intents(self, *, model: str | None = None) -> Sequence[AuditEvent]:
        """Locking intents (``details.lock``) with no outcome yet, oldest first."""
        ...

    async def events(
        self, *, model: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> Sequence[AuditEvent]: ...

    async def head(self) -> tuple[int, str]:
        """(count, hash of the newest record); (0, "") when empty."""
        ...


@runtime_checkable
class Notifier(Backend, Protocol):
    """Tells people what happened (a chat webhook, a command, mail). Never blocks an action:
    the console bounds each call with a short timeout and records a failure as a note."""

    async def notify(self, message: dict[str, Any]) -> str:
        """Deliver ``message`` (event, model, version, stage, actor, request_id, reason, text,
        ...; docs/team.md); return a one-line description or raise BackendError."""
        ...


# -- optional batch reads (docs/plugins.md, "Batch reads") ------------------------------------
# A backend may add any of these beside its per-item methods; the console uses them for many
# models at once (status, the overview) and falls back to the per-item methods without them.
# One call, one timeout counted from when it is made: send the requests of all items at once.


@runtime_checkable
class RegistrySnapshots(Protocol):
    """Versions and stages of many models in one read."""

    async def snapshot(self, models: Sequence[str]) -> Batch[str, RegistryEntry]:
        """Per model what ``versions()`` and ``stages()`` give (NotFound for an unknown one);
        an entry may leave out per-version facts (``RegistryEntry.complete`` False)."""
        ...


@runtime_checkable
class VersionCompletion(Protocol):
    """The per-version facts a snapshot left out, for the versions shown."""

    async def complete_versions(
        self, versions: Sequence[ModelVersion]
    ) -> Batch[tuple[str, str], ModelVersion]:
        """(model, version) -> the version as ``versions()`` gives it."""
        ...


@runtime_checkable
class RegistryRemote(Protocol):
    """A registry read from a local clone of a shared remote (gto): where the shared truth is,
    and when the clone last fetched it (``status`` says how old its view is)."""

    async def remote(self) -> str | None:
        """The remote the registry's tags are shared through; None when there is none."""
        ...

    async def fetched_at(self) -> datetime | None:
        """When the clone last fetched the remote; None when it never did."""
        ...


@runtime_checkable
class CommitBatch(Protocol):
    async def commits_many(self, revs: Sequence[str]) -> Batch[str, Commit]:
        """rev -> what ``commit(rev)`` gives."""
        ...


@runtime_checkable
class DataBatch(Protocol):
    """(model, commit) -> what ``data_version``, ``metrics`` and ``params`` give."""

    async def data_versions_many(
        self, items: Sequence[tuple[str, str]]
    ) -> Batch[tuple[str, str], DataVersion]: ...

    async def metrics_many(
        self, items: Sequence[tuple[str, str]]
    ) -> Batch[tuple[str, str], dict[str, float]]: ...

    async def params_many(
        self, items: Sequence[tuple[str, str]]
    ) -> Batch[tuple[str, str], dict[str, Any]]: ...


@runtime_checkable
class CIBatch(Protocol):
    async def runs_for_many(self, commits: Sequence[str]) -> Batch[str, Sequence[CIRun]]:
        """commit -> what ``runs_for(commit)`` gives."""
        ...


KINDS: dict[str, type] = {
    "code": CodeRepo,
    "registry": ModelRegistry,
    "data": DataVersions,
    "ci": CIProvider,
    "metrics": MetricsSource,
    "deploy": Deployer,
    "audit": AuditStore,
    "notify": Notifier,
}
