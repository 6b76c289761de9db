"""CI run records of the demo: one JSON file per run in ``.ci-runs/`` (docs/runs-folder.md),
with JUnit reports for the test and evaluation jobs. One run per commit; failed runs where the
story says so (the newest churn-predictor candidate fails its calibration check, twice)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from console.demo.content import CI_URL, dump_json, iso, junit_xml

FIRST_RUN_ID = 4100
PIPELINE = "train-and-evaluate"
UNIT_TESTS = [
    "test_params_load",
    "test_schema_matches_data",
    "test_feature_builder_types",
    "test_no_nan_features",
    "test_train_smoke",
    "test_metrics_file_written",
    "test_predict_contract",
    "test_model_card_fields",
    "test_ci_pipeline_targets",
]
QUALITY_CHECKS = [
    "test_primary_metric_not_below_production",
    "test_calibration_ece",
    "test_no_nan_predictions",
    "test_latency_budget",
]


class CommitLike(Protocol):
    when: datetime
    author: str
    subject: str
    ci: str
    ci_note: str
    model: str
    mark: int


def _job(
    name: str, start: datetime, seconds: int, conclusion: str, url: str, junit: str | None = None
) -> tuple[dict[str, object], datetime]:
    end = start + timedelta(seconds=seconds)
    job: dict[str, object] = {
        "name": name,
        "status": "completed",
        "conclusion": conclusion,
        "started_at": iso(start),
        "finished_at": iso(end),
        "url": url,
    }
    if junit:
        job["junit"] = junit
    return job, end


def _run(
    folder: Path, run_id: int, commit: CommitLike, sha: str, rng: random.Random, start: datetime
) -> None:
    url = f"{CI_URL}/{run_id}"
    failing = commit.ci == "failure"
    # Model commits fail in evaluation (a quality check); others in their unit tests.
    fail_job = ("evaluate" if commit.model else "unit-tests") if failing else ""
    names = ["lint", "unit-tests", *(["train", "evaluate"] if commit.model else [])]
    jobs: list[dict[str, object]] = []
    clock, blocked = start, False
    for name in names:
        junit = None
        if name in ("unit-tests", "evaluate") and not blocked:
            cases = UNIT_TESTS if name == "unit-tests" else QUALITY_CHECKS
            broken = "test_calibration_ece" if name == "evaluate" else "test_ci_pipeline_targets"
            note = commit.ci_note or "make: *** No rule to make target 'evaluate'"
            bad = {broken: note} if name == fail_job else {}
            junit = f"junit/{run_id}-{name}.xml"
            (folder / junit).write_text(
                junit_xml(name, [(c, bad.get(c, "")) for c in cases]), encoding="utf-8"
            )
        if blocked:
            job, _ = _job(name, clock, 0, "skipped", f"{url}#{name}")
        else:
            seconds = rng.randint(25, 90) if name != "train" else rng.randint(180, 600)
            conclusion = "failure" if name == fail_job else "success"
            job, clock = _job(name, clock, seconds, conclusion, f"{url}#{name}", junit)
            blocked = conclusion == "failure"
        jobs.append(job)
    record = {
        "id": str(run_id),
        "pipeline": PIPELINE,
        "commit": sha,
        "branch": "main",
        "event": "push",
        "status": "completed",
        "conclusion": "failure" if failing else "success",
        "started_at": iso(start),
        "finished_at": iso(clock),
        "url": url,
        "actor": commit.author,
        "title": commit.subject,
        "jobs": jobs,
    }
    (folder / f"run-{run_id}.json").write_text(dump_json(record), encoding="utf-8")


def write_ci_runs(
    folder: Path, commits: Sequence[CommitLike], shas: dict[int, str], seed: int
) -> int:
    """Write the run records for ``commits`` (oldest first); returns how many runs."""
    (folder / "junit").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed * 7919 + 1)
    run_id = FIRST_RUN_ID
    for commit in commits:
        start = commit.when + timedelta(seconds=rng.randint(20, 180))
        _run(folder, run_id, commit, shas[commit.mark], rng, start)
        run_id += 1
        if commit.ci == "failure" and commit.model:
            # Someone re-ran it hoping for a flake; it failed the same way.
            _run(folder, run_id, commit, shas[commit.mark], rng, start + timedelta(minutes=42))
            run_id += 1
    return run_id - FIRST_RUN_ID
