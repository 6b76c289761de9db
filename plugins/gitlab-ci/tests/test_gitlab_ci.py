"""The gitlab-ci plugin against the loopback GitLab stub: pipelines and jobs of a commit,
pagination, status mapping, errors, and the deploy by pipeline trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cd4ml_console_gitlab_ci import GitLabCIConfig
from cd4ml_console_gitlab_ci.mapping import state_of
from cd4ml_console_gitlab_ci.pipelines import GitLabCI
from gitlab_stub import API_TOKEN, TRIGGER_TOKEN, DocumentedFields, GitLabStub, Scripted
from pydantic import ValidationError

from console.domain import CIConclusion, CIStatus
from console.plugins import discover
from console.plugins import http as tp
from console.ports import (
    BackendError,
    CIProvider,
    Deployer,
    InvalidResponse,
    NotFound,
    Unauthorized,
    Unreachable,
)

SHA = "a" * 40
Make = Callable[..., GitLabCI]


def test_the_plugin_is_discovered_through_its_entry_point() -> None:
    plugin = discover().get("gitlab-ci")
    assert plugin is not None and plugin.kinds == frozenset({"ci", "deploy"})


async def test_the_backend_is_a_ci_provider_and_a_deployer(make: Make) -> None:
    backend = make()
    assert isinstance(backend, CIProvider) and isinstance(backend, Deployer)


async def test_pipelines_of_a_commit_across_pages_with_their_jobs(
    gitlab: GitLabStub, make: Make
) -> None:
    for n in range(5):
        gitlab.add_pipeline(200 + n, SHA, created=f"2024-05-01T10:0{n}:00.000Z")
    gitlab.add_pipeline(205, SHA, status="running", created="2024-05-01T10:09:00.000Z", name=None)
    gitlab.add_pipeline(300, "b" * 40)
    gitlab.add_job(203, 1, "unit", stage="test")
    gitlab.add_job(203, 2, "lint", stage="test", status="failed", allow_failure=True)
    gitlab.add_job(203, 3, "train", stage="build", finished="2024-05-01T10:07:00.000Z")
    gitlab.add_job(205, 4, "train", stage="build", status="running", finished=None)

    runs = await make(per_page=2).runs_for(SHA)

    assert [r.id for r in runs] == ["205", "204", "203", "202", "201", "200"]
    running, done = runs[0], runs[2]
    assert (running.status, running.conclusion, running.finished_at) == (
        CIStatus.IN_PROGRESS,
        None,
        None,
    )
    assert running.pipeline == "push main"  # no name: source and ref
    assert done.pipeline == "Build pipeline" and done.url.endswith("/-/pipelines/203")
    assert (done.status, done.conclusion) == (CIStatus.COMPLETED, CIConclusion.SUCCESS)
    assert done.actor == "alice"
    assert [(j.name, j.conclusion) for j in done.jobs] == [
        ("test: unit", CIConclusion.SUCCESS),
        ("test: lint", CIConclusion.NEUTRAL),  # allowed to fail
        ("build: train", CIConclusion.SUCCESS),
    ]
    listed = [s for s in gitlab.seen if s.path.endswith("/pipelines")]
    assert len(listed) == 3 and listed[0].query["sha"] == SHA
    assert listed[0].path == "/api/v4/projects/ml%2Ffraud-model/pipelines"
    assert gitlab.seen[0].headers["authorization"] == f"Bearer {API_TOKEN}"


async def test_sources_filter_out_deploy_pipelines(gitlab: GitLabStub, make: Make) -> None:
    gitlab.add_pipeline(1, SHA, source="push")
    gitlab.add_pipeline(2, SHA, source="trigger")
    runs = await make(sources=["push", "merge_request_event"], jobs=False).runs_for(SHA)
    assert [r.id for r in runs] == ["1"]


async def test_finished_pipelines_are_reused(gitlab: GitLabStub, make: Make) -> None:
    gitlab.add_pipeline(1, SHA)
    backend = make()
    first = await backend.runs_for(SHA)
    asked = len(gitlab.seen)
    assert await backend.runs_for(SHA) == first and len(gitlab.seen) == asked


@pytest.mark.parametrize(
    ("status", "allow_failure", "expected"),
    [
        ("created", False, (CIStatus.QUEUED, None)),
        ("waiting_for_resource", False, (CIStatus.QUEUED, None)),
        ("scheduled", False, (CIStatus.QUEUED, None)),
        ("running", False, (CIStatus.IN_PROGRESS, None)),
        ("success", False, (CIStatus.COMPLETED, CIConclusion.SUCCESS)),
        ("failed", False, (CIStatus.COMPLETED, CIConclusion.FAILURE)),
        ("failed", True, (CIStatus.COMPLETED, CIConclusion.NEUTRAL)),
        ("canceled", False, (CIStatus.COMPLETED, CIConclusion.CANCELLED)),
        ("skipped", False, (CIStatus.COMPLETED, CIConclusion.SKIPPED)),
        ("manual", False, (CIStatus.COMPLETED, CIConclusion.ACTION_REQUIRED)),
        ("something_new", False, (CIStatus.QUEUED, None)),
    ],
)
def test_status_mapping(status: str, allow_failure: bool, expected: tuple[Any, Any]) -> None:
    assert state_of(status, allow_failure) == expected


async def test_a_refused_token_is_unauthorized_and_never_shown(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD4ML_TEST_GL_WRONG", "glpat-wrongwrong")
    backend = make(token_env="CD4ML_TEST_GL_WRONG")
    with pytest.raises(Unauthorized, match=r"refused the credentials.*401 Unauthorized") as caught:
        await backend.runs_for(SHA)
    assert "glpat-wrong" not in f"{caught.value} {caught.value.hint} {backend!r}"
    assert "cd4ml-console login gitlab-ci" in caught.value.hint


async def test_an_unknown_project_is_not_found(make: Make) -> None:
    with pytest.raises(
        NotFound, match=r"projects/ml%2Fother/pipelines was not found.*Project Not Found"
    ):
        await make(project="ml/other").runs_for(SHA)


async def test_rate_limited_reads_honour_retry_after(
    gitlab: GitLabStub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(tp, "sleep", fake_sleep)
    gitlab.add_pipeline(1, SHA)
    gitlab.scripted.append(
        Scripted(
            "GET",
            r".*/pipelines",
            429,
            {"message": "Retry later"},
            {"Retry-After": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "0"},
        )
    )
    assert len(await make(jobs=False).runs_for(SHA)) == 1 and slept == [3.0]
    gitlab.scripted.append(Scripted("GET", r".*/pipelines", 502, {"message": "502"}, times=9))
    with pytest.raises(Unreachable, match="tried 4 times"):
        await make(jobs=False).runs_for("c" * 40)


async def test_a_list_that_is_not_a_list_is_an_invalid_response(
    gitlab: GitLabStub, make: Make
) -> None:
    gitlab.scripted.append(Scripted("GET", r".*/pipelines", 200, {"oops": 1}, operation=""))
    with pytest.raises(InvalidResponse, match="not a list"):
        await make().runs_for(SHA)


async def test_deploy_by_trigger_token_follows_the_pipeline(gitlab: GitLabStub, make: Make) -> None:
    said = await make(deploy_ref="release").deploy("fraud", "v2.0.0", "production", actor="alice")
    assert (
        said
        == "deploy pipeline 7001 succeeded: https://gitlab.example/ml/fraud-model/-/pipelines/7001"
    )
    (trigger,) = [s for s in gitlab.seen if s.method == "POST"]
    assert trigger.path == "/api/v4/projects/ml%2Ffraud-model/trigger/pipeline"
    assert "authorization" not in trigger.headers  # the trigger token authenticates it
    assert trigger.body == {
        "token": TRIGGER_TOKEN,
        "ref": "release",
        "variables[CD4ML_MODEL]": "fraud",
        "variables[CD4ML_VERSION]": "v2.0.0",
        "variables[CD4ML_STAGE]": "production",
        "variables[CD4ML_ACTOR]": "alice",
    }
    assert gitlab.pipelines[7001]["variables"]["CD4ML_VERSION"] == "v2.0.0"
    polls = [s for s in gitlab.seen if s.path.endswith("/pipelines/7001")]
    assert len(polls) == 3


async def test_deploy_through_the_api_endpoint(gitlab: GitLabStub, make: Make) -> None:
    backend = make(trigger="api", deploy_variables={"MODEL_REF": "{model}@{version}"})
    said = await backend.deploy("fraud", "v2", "staging", actor="bob")
    assert "succeeded" in said
    (create,) = [s for s in gitlab.seen if s.method == "POST"]
    assert create.body == {"ref": "main", "variables": [{"key": "MODEL_REF", "value": "fraud@v2"}]}
    assert create.headers["authorization"] == f"Bearer {API_TOKEN}"


async def test_a_failed_or_blocked_deploy_pipeline_is_an_error(
    gitlab: GitLabStub, make: Make
) -> None:
    gitlab.final_status = "failed"
    with pytest.raises(BackendError, match=r"deploy pipeline 7001 failed: https://"):
        await make().deploy("fraud", "v2", "production", actor="alice")
    gitlab.final_status = "manual"
    with pytest.raises(BackendError, match="waits for a manual job") as caught:
        await make().deploy("fraud", "v2", "production", actor="alice")
    assert "manual job" in caught.value.hint


async def test_a_wrong_trigger_token_is_sent_once_and_never_shown(
    gitlab: GitLabStub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD4ML_TEST_GL_BAD_TRIGGER", "glptt-not-it")
    backend = make(trigger_token_env="CD4ML_TEST_GL_BAD_TRIGGER")
    with pytest.raises(NotFound) as caught:
        await backend.deploy("fraud", "v2", "production", actor="alice")
    assert "glptt-not-it" not in str(caught.value)
    assert len([s for s in gitlab.seen if s.method == "POST"]) == 1


async def test_a_missing_trigger_token_says_where_it_looked(make: Make) -> None:
    backend = make(trigger_token_env="CD4ML_TEST_GL_NO_TRIGGER")
    with pytest.raises(Unauthorized, match="no credential 'gitlab-ci-trigger' found") as caught:
        await backend.deploy("fraud", "v2", "production", actor="alice")
    assert "cd4ml-console login gitlab-ci-trigger" in caught.value.hint


async def test_an_unfinished_deploy_at_the_deadline_is_unknown(
    gitlab: GitLabStub, make: Make
) -> None:
    gitlab._advance = lambda pipeline: None  # type: ignore[method-assign]
    with pytest.raises(Unreachable, match=r"still created after 0\.1s.*outcome is unknown"):
        await make(timeout_seconds=0.1).deploy("fraud", "v2", "production", actor="alice")


async def test_check_names_the_project_and_the_trigger_token(make: Make) -> None:
    said = await make().check()
    assert said.startswith("GitLab project ml/fraud-model at http://127.0.0.1:")
    assert "environment variable CD4ML_TEST_GITLAB_TRIGGER" in said
    assert TRIGGER_TOKEN not in said


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"project": " "}, "numeric id or a path"),
        ({"deploy_variables": {"bad-name": "x"}}, "not a CI/CD variable name"),
        ({"deploy_variables": {"X": "{modle}"}}, "unknown placeholder"),
        ({"trigger": "webhook"}, "trigger"),
        ({"projekt": "x"}, "projekt"),
    ],
)
def test_config_errors_name_the_problem(options: dict[str, Any], complaint: str) -> None:
    options.setdefault("project", "ml/fraud-model")
    with pytest.raises(ValidationError, match=complaint):
        GitLabCIConfig(**options)


def test_the_documented_fields_reject_what_gitlab_would_not_send(gitlab: GitLabStub) -> None:
    fields = DocumentedFields()
    pipeline = gitlab.add_pipeline(1, SHA)
    job = gitlab.add_job(1, 2, "unit")
    assert fields.errors("get-pipeline", pipeline) == []
    assert fields.errors("list-pipeline-jobs", [job]) == []
    assert fields.errors("get-pipeline", {**pipeline, "status": "exploded"})
    assert fields.errors("list-pipeline-jobs", [{**job, "allow_failure": "no"}])
    no_sha = {k: v for k, v in pipeline.items() if k != "sha"}
    assert any("sha" in e for e in fields.errors("get-pipeline", no_sha))


PROXY_401 = (
    b"<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n"
    b"<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


async def test_a_refused_trigger_names_the_trigger_token_and_the_page_is_one_line(
    gitlab: GitLabStub, make: Make
) -> None:
    """A proxy in front of GitLab refuses the trigger: the message is one line of the page's
    words and names the credential that was sent (the trigger token's entry and variable,
    not the API token's, and never a value)."""
    gitlab.scripted.append(Scripted("POST", r".*/trigger/pipeline", 401, PROXY_401))
    with pytest.raises(Unauthorized) as caught:
        await make().deploy("fraud", "v2", "production", actor="alice")
    said = str(caught.value)
    assert "\n" not in said and "<" not in said, said
    assert "(HTTP 401: 401 Authorization Required nginx)" in said, said
    assert (
        "sent credential 'gitlab-ci-trigger' from environment variable CD4ML_TEST_GITLAB_TRIGGER"
        in said
    )
    assert TRIGGER_TOKEN not in said and API_TOKEN not in said
