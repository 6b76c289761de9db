"""GitLab's pipeline and job objects (REST v4, as documented in doc/api/pipelines.md and
doc/api/jobs.md) read into domain CIRuns. Only the fields the console shows are read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from console.domain import CIConclusion, CIJob, CIRun, CIStatus

Q, P, C = CIStatus.QUEUED, CIStatus.IN_PROGRESS, CIStatus.COMPLETED
STATES: dict[str, tuple[CIStatus, CIConclusion | None]] = {
    "created": (Q, None),
    "waiting_for_resource": (Q, None),
    "preparing": (Q, None),
    "pending": (Q, None),
    "scheduled": (Q, None),
    "running": (P, None),
    "canceling": (P, None),
    "success": (C, CIConclusion.SUCCESS),
    "failed": (C, CIConclusion.FAILURE),
    "canceled": (C, CIConclusion.CANCELLED),
    "skipped": (C, CIConclusion.SKIPPED),
    "manual": (C, CIConclusion.ACTION_REQUIRED),  # blocked until someone starts a manual job
}
FINISHED = frozenset(s for s, (status, _) in STATES.items() if status is C)


def state_of(status: str, allow_failure: bool = False) -> tuple[CIStatus, CIConclusion | None]:
    """(status, conclusion) of a GitLab status; a failure that is allowed is neutral."""
    found = STATES.get(status, (Q, None))
    if allow_failure and found[1] is CIConclusion.FAILURE:
        return C, CIConclusion.NEUTRAL
    return found


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Lenient):
    username: str = ""


class Pipeline(_Lenient):
    """The fields of a pipeline (list or single) the console reads."""

    id: int
    iid: int | None = None
    sha: str
    ref: str = ""
    status: str
    source: str = ""
    name: str | None = None
    web_url: str = ""
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    user: _User | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def label(self) -> str:
        """What the pipeline is called on screen: its name, else its source and ref."""
        return self.name or f"{self.source or 'pipeline'} {self.ref}".strip()


class Job(_Lenient):
    """The fields of a job of ``GET /projects/:id/pipelines/:pipeline_id/jobs``."""

    id: int
    name: str
    stage: str = ""
    status: str
    allow_failure: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    web_url: str = ""
    user: _User | None = None

    def to_domain(self) -> CIJob:
        status, conclusion = state_of(self.status, self.allow_failure)
        return CIJob(
            name=f"{self.stage}: {self.name}" if self.stage else self.name,
            status=status,
            conclusion=conclusion,
            started_at=self.started_at,
            finished_at=self.finished_at,
            url=self.web_url,
        )


def pipeline_to_domain(pipeline: Pipeline, jobs: list[Job]) -> CIRun:
    """A pipeline as a CIRun; times and actor come from the jobs when the list lacks them."""
    status, conclusion = state_of(pipeline.status)
    starts = [j.started_at for j in jobs if j.started_at is not None]
    ends = [j.finished_at for j in jobs if j.finished_at is not None]
    finished_at = None
    if status is CIStatus.COMPLETED:
        finished_at = pipeline.finished_at or (max(ends) if ends else pipeline.updated_at)
    who = pipeline.user or next((j.user for j in jobs if j.user and j.user.username), None)
    return CIRun(
        id=str(pipeline.id),
        pipeline=pipeline.label,
        commit=pipeline.sha,
        status=status,
        conclusion=conclusion,
        started_at=pipeline.started_at or (min(starts) if starts else pipeline.created_at),
        finished_at=finished_at,
        url=pipeline.web_url,
        actor=who.username if who is not None else "",
        jobs=tuple(j.to_domain() for j in sorted(jobs, key=lambda j: j.id)),
    )


def parse_items(items: Any, model: type[_Lenient], where: str) -> list[Any]:
    """Each element of ``items`` as ``model``; the first bad one raises ValueError naming it."""
    if not isinstance(items, list):
        raise ValueError(f"{where} is not a list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(item)"
            raise ValueError(f"{where}[{i}].{field}: {first['msg']}") from None
    return out
