"""GitHub's workflow-run and job objects (REST ``components/schemas``) read into domain CIRuns.
Only the fields the console shows are read; anything else may change freely."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from console.domain import CIConclusion, CIJob, CIRun, CIStatus

_CONCLUSIONS = {c.value: c for c in CIConclusion}
_CONCLUSIONS.update({"startup_failure": CIConclusion.FAILURE, "stale": CIConclusion.NEUTRAL})


def status_of(value: str | None) -> CIStatus:
    """GitHub's queued/requested/waiting/pending/in_progress/completed as the domain's three."""
    if value == "completed":
        return CIStatus.COMPLETED
    if value == "in_progress":
        return CIStatus.IN_PROGRESS
    return CIStatus.QUEUED


def conclusion_of(value: str | None) -> CIConclusion | None:
    return _CONCLUSIONS.get(value or "")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Lenient):
    login: str = ""


class WorkflowRun(_Lenient):
    """The fields of ``#/components/schemas/workflow-run`` the console reads."""

    id: int
    name: str | None = None
    display_title: str = ""
    head_sha: str
    head_branch: str | None = None
    path: str = ""
    run_number: int = 0
    run_attempt: int = 1
    event: str = ""
    status: str | None = None
    conclusion: str | None = None
    workflow_id: int = 0
    html_url: str = ""
    created_at: datetime
    updated_at: datetime | None = None
    run_started_at: datetime | None = None
    actor: _User | None = None
    triggering_actor: _User | None = None

    @property
    def workflow_file(self) -> str:
        """``deploy.yml`` of ``.github/workflows/deploy.yml@main`` (or of owner/repo/...)."""
        return self.path.split("@", 1)[0].rsplit("/", 1)[-1]

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def matches(self, workflows: list[str]) -> bool:
        """Whether this run belongs to one of ``workflows`` (names, file names or ids)."""
        if not workflows:
            return True
        return bool({self.name or "", self.workflow_file, str(self.workflow_id)} & set(workflows))


class Job(_Lenient):
    """The fields of ``#/components/schemas/job`` the console reads."""

    id: int
    name: str
    status: str | None = None
    conclusion: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    html_url: str | None = None

    def to_domain(self) -> CIJob:
        return CIJob(
            name=self.name,
            status=status_of(self.status),
            conclusion=conclusion_of(self.conclusion),
            started_at=self.started_at,
            finished_at=self.completed_at,
            url=self.html_url or "",
        )


def run_to_domain(run: WorkflowRun, jobs: tuple[CIJob, ...] = ()) -> CIRun:
    """A workflow run as the console's CIRun (pipeline = workflow name)."""
    who = run.triggering_actor or run.actor
    return CIRun(
        id=str(run.id),
        pipeline=run.name or run.workflow_file or str(run.workflow_id),
        commit=run.head_sha,
        status=status_of(run.status),
        conclusion=conclusion_of(run.conclusion) if run.completed else None,
        started_at=run.run_started_at or run.created_at,
        finished_at=run.updated_at if run.completed else None,
        url=run.html_url,
        actor=who.login if who is not None else "",
        jobs=jobs,
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
