"""MLflow REST objects -> console domain objects. Pure functions, no I/O.

Stage history lives in version tags the console writes when it moves an alias:
``cd4ml.stage.<stage>.assigned_at`` (ISO 8601), ``.assigned_by``, ``.message``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from cd4ml_console_mlflow.runs import GIT_COMMIT_TAG, RunFacts
from cd4ml_console_mlflow.schema import ModelVersion as RestVersion
from cd4ml_console_mlflow.schema import RegisteredModel
from console.domain import Model, ModelVersion, RegistryEvent, RegistryEventKind, StageAssignment

TAG_PREFIX = "cd4ml.stage."


def stage_tag(stage: str, field: str) -> str:
    """The version tag key the console writes for ``stage`` (assigned_at/assigned_by/message)."""
    return f"{TAG_PREFIX}{stage}.{field}"


def from_millis(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def from_iso(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def to_model(rm: RegisteredModel) -> Model:
    """Registered model -> Model; its tags (except mlflow.*) become ``key=value`` labels."""
    return Model(
        name=rm.name,
        description=rm.description,
        labels=tuple(f"{t.key}={t.value}" for t in rm.tags if not t.key.startswith("mlflow.")),
        deprecated=any(t.key == "cd4ml.deprecated" and t.value == "true" for t in rm.tags),
    )


def to_version(
    v: RestVersion,
    run: RunFacts | None,
    stages: Sequence[str],
    aliases: Sequence[str],
) -> ModelVersion:
    """One model version with its source run's lineage; ``stages`` in pipeline order."""
    return with_run(listed_version(v, stages, aliases), run)


def listed_version(v: RestVersion, stages: Sequence[str], aliases: Sequence[str]) -> ModelVersion:
    """One model version as the registry lists it, without its source run's facts."""
    tags = v.tag_map()
    extra: dict[str, str] = {}
    if v.run_id:
        extra["mlflow.run_id"] = v.run_id
    if v.status != "READY":
        extra["mlflow.status"] = v.status
    if aliases:
        extra["mlflow.aliases"] = ",".join(sorted(aliases))
    # MLflow 3 logged-model metrics, when the server links them to the version.
    metrics = {m.key: m.value for m in v.model_metrics if m.value is not None}
    return ModelVersion(
        model=v.name,
        version=v.version,
        commit=tags.get(GIT_COMMIT_TAG, ""),
        created_by=v.user_id,
        created_at=from_millis(v.creation_timestamp),
        stages=tuple(stages),
        deregistered=v.status == "FAILED_REGISTRATION",
        source=v.source,
        tags={**tags, **extra},
        metrics=_finite(metrics),
    )


def with_run(version: ModelVersion, run: RunFacts | None) -> ModelVersion:
    """``version`` completed with its source run's facts: metrics (the version's own win),
    params, the commit and author when the version has none, the datasets."""
    if run is None:
        return version
    tags = dict(version.tags)
    if run.datasets:
        tags["mlflow.datasets"] = ", ".join(run.datasets)
    # Validated again (model_copy does not validate): the run's text is cleaned like the rest.
    return ModelVersion.model_validate(
        {
            **dict(version),
            "commit": version.commit or run.commit,
            "created_by": version.created_by or run.user_id,
            "tags": tags,
            "metrics": _finite({**run.metrics, **version.metrics}),
            "params": dict(run.params),
        }
    )


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: x for k, x in metrics.items() if x == x and abs(x) != float("inf")}


def to_assignment(
    model: str, stage: str, alias: str, version: str | None, tags: Mapping[str, str]
) -> StageAssignment:
    return StageAssignment(
        model=model,
        stage=stage,
        version=version,
        assigned_by=tags.get(stage_tag(stage, "assigned_by"), ""),
        assigned_at=from_iso(tags.get(stage_tag(stage, "assigned_at"), "")),
        ref=f"alias {alias}",
    )


def history_events(
    model: str, versions: Iterable[RestVersion], aliases: Mapping[str, str]
) -> tuple[RegistryEvent, ...]:
    """Registrations, plus the latest console assignment of each (version, stage), by time.

    MLflow keeps no alias history: an alias moved outside the console leaves no event.
    """
    events: list[RegistryEvent] = []
    for v in versions:
        events.append(
            RegistryEvent(
                model=model,
                kind=RegistryEventKind.REGISTER,
                version=v.version,
                actor=v.user_id,
                at=from_millis(v.creation_timestamp),
                ref=f"version {v.version}",
            )
        )
        tags = v.tag_map()
        for stage, alias in aliases.items():
            at = from_iso(tags.get(stage_tag(stage, "assigned_at"), ""))
            if at is None:
                continue
            events.append(
                RegistryEvent(
                    model=model,
                    kind=RegistryEventKind.ASSIGN,
                    version=v.version,
                    stage=stage,
                    actor=tags.get(stage_tag(stage, "assigned_by"), ""),
                    at=at,
                    ref=f"alias {alias}",
                    message=tags.get(stage_tag(stage, "message"), ""),
                )
            )
    floor = datetime.min.replace(tzinfo=UTC)
    events.sort(key=lambda e: (e.at or floor, e.kind != RegistryEventKind.REGISTER))
    return tuple(events)


__all__ = [
    "TAG_PREFIX",
    "from_iso",
    "from_millis",
    "history_events",
    "listed_version",
    "stage_tag",
    "to_assignment",
    "to_model",
    "to_version",
    "with_run",
]
