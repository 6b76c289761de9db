"""Domain rules users rely on: version order, immutability, CI state."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from console.domain import (
    CIConclusion,
    CIRun,
    CIStatus,
    Commit,
    DataOutput,
    DataVersion,
    ModelVersion,
    SemVer,
    sort_versions,
)
from console.services.overview import VersionDetail


@pytest.mark.parametrize(
    ("unsorted", "expected"),
    [
        (["v1.10.0", "v1.9.0", "v1.2.0"], ["v1.2.0", "v1.9.0", "v1.10.0"]),
        (
            [
                "v1.0.0",
                "v1.0.0-rc.1",
                "v1.0.0-alpha",
                "v1.0.0-alpha.1",
                "v1.0.0-beta.11",
                "v1.0.0-beta.2",
            ],
            [
                "v1.0.0-alpha",
                "v1.0.0-alpha.1",
                "v1.0.0-beta.2",
                "v1.0.0-beta.11",
                "v1.0.0-rc.1",
                "v1.0.0",
            ],
        ),
        (["10", "9", "1"], ["1", "9", "10"]),
        (["v2.0.0", "3"], ["3", "v2.0.0"]),
    ],
)
def test_versions_sort_semantically(unsorted: list[str], expected: list[str]) -> None:
    assert sort_versions(unsorted) == expected


def test_semver_rejects_garbage_and_ignores_build_metadata() -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        SemVer("v1.2")
    assert SemVer("v1.2.3+build.5") == SemVer("v1.2.3")


def test_domain_objects_are_frozen_and_strict() -> None:
    v = ModelVersion(model="m", version="v1.0.0")
    with pytest.raises(ValidationError):
        v.version = "v2.0.0"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ModelVersion(model="m", version="v1", colour="red")  # type: ignore[call-arg]


def test_commit_short_sha_and_data_digest() -> None:
    assert Commit(sha="0123456789abcdef").short == "01234567"
    a = DataVersion(commit="c", outputs=(DataOutput(path="d", md5="aa", size=3),))
    b = DataVersion(commit="other", outputs=(DataOutput(path="d", md5="aa", size=3),))
    assert a.digest == b.digest and a.digest
    assert DataVersion(commit="c").digest == ""


def _run(pipeline: str, status: CIStatus, conclusion: CIConclusion | None, minute: int) -> CIRun:
    return CIRun(
        id=f"{pipeline}{minute}",
        pipeline=pipeline,
        commit="c",
        status=status,
        conclusion=conclusion,
        started_at=datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
    )


def test_ci_state_uses_newest_run_per_pipeline() -> None:
    done, ok, bad = CIStatus.COMPLETED, CIConclusion.SUCCESS, CIConclusion.FAILURE
    retried = (_run("train", done, ok, 5), _run("train", done, bad, 1))  # newest first
    assert VersionDetail(model="m", version="v", ci=retried).ci_state == "success"
    mixed = (_run("train", done, ok, 5), _run("eval", done, bad, 4))
    assert VersionDetail(model="m", version="v", ci=mixed).ci_state == "failure"
    running = (_run("train", CIStatus.IN_PROGRESS, None, 6),)
    assert VersionDetail(model="m", version="v", ci=running).ci_state == "running"
    assert VersionDetail(model="m", version="v").ci_state == "none"


@pytest.mark.parametrize(
    ("text", "other"),
    [("1.2.0", "v1.2.0"), ("v1.2.0", "1.2.0"), ("2.0.0-rc.1", "v2.0.0-rc.1"), ("3", "3"),
     ("v3", "v3"), ("abc1234", "abc1234")],
)  # fmt: skip
def test_a_semantic_version_with_or_without_its_v(text: str, other: str) -> None:
    from console.domain.versions import other_spelling

    assert other_spelling(text) == other
