"""CI runs of a commit from the GitHub stub: pagination, jobs, mapping, caching, discovery."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cd4ml_console_github_actions.actions import GitHubActions
from github_stub import TOKEN, GitHubStub, OpenApiSubset

from console.domain import CIConclusion, CIStatus
from console.plugins import discover
from console.ports import CIProvider, Deployer, InvalidResponse

SHA = "a" * 40
OTHER = "b" * 40
Make = Callable[..., GitHubActions]


def test_the_plugin_is_discovered_through_its_entry_point() -> None:
    plugin = discover().get("github-actions")
    assert plugin is not None
    assert plugin.kinds == frozenset({"ci", "deploy"})


async def test_the_backend_is_a_ci_provider_and_a_deployer(make: Make) -> None:
    backend = make()
    assert isinstance(backend, CIProvider) and isinstance(backend, Deployer)


async def test_runs_of_a_commit_across_pages_with_their_jobs(
    github: GitHubStub, make: Make
) -> None:
    for i in range(5):
        github.add_run(
            100 + i,
            SHA,
            workflow="ci.yml" if i % 2 else "train.yml",
            created=f"2024-05-01T10:0{i}:00Z",
            conclusion="failure" if i == 3 else "success",
        )
    github.add_run(200, OTHER)
    github.add_run(105, SHA, status="in_progress", conclusion=None, created="2024-05-01T10:09:00Z")
    for j in range(3):
        github.add_job(103, 500 + j, f"test-{j}", conclusion="failure" if j == 2 else "success")
    github.add_job(105, 600, "build", status="in_progress", conclusion=None)

    runs = await make(per_page=2).runs_for(SHA)

    assert [r.id for r in runs] == ["105", "104", "103", "102", "101", "100"]  # newest first
    newest, failed = runs[0], runs[2]
    assert (newest.status, newest.conclusion, newest.finished_at) == (
        CIStatus.IN_PROGRESS,
        None,
        None,
    )
    assert [(j.name, j.status) for j in newest.jobs] == [("build", CIStatus.IN_PROGRESS)]
    assert failed.conclusion is CIConclusion.FAILURE and failed.pipeline == "CI"
    assert failed.url.endswith("/actions/runs/103") and failed.actor == "alice"
    assert [j.conclusion for j in failed.jobs] == [CIConclusion.SUCCESS] * 2 + [
        CIConclusion.FAILURE
    ]
    assert failed.jobs[0].url.endswith("/job/500")
    listed = [s for s in github.seen if s.path.endswith("/actions/runs")]
    assert len(listed) == 3  # 6 runs, 2 per page, following Link: rel="next"
    assert listed[0].query["head_sha"] == SHA and listed[0].query["per_page"] == "2"
    jobs_pages = [s for s in github.seen if s.path.endswith("/103/jobs")]
    assert len(jobs_pages) == 2
    first = github.seen[0].headers
    assert first["authorization"] == f"Bearer {TOKEN}"
    assert first["x-github-api-version"] == "2022-11-28"
    assert first["accept"] == "application/vnd.github+json"


async def test_only_the_configured_workflows_count(github: GitHubStub, make: Make) -> None:
    github.add_run(1, SHA, workflow="ci.yml")
    github.add_run(2, SHA, workflow="docs.yml")
    runs = await make(workflows=["ci.yml"], jobs=False).runs_for(SHA)
    assert [r.id for r in runs] == ["1"]
    by_name = await make(workflows=["DOCS"], jobs=False).runs_for(SHA)
    assert [r.pipeline for r in by_name] == ["DOCS"]


async def test_finished_runs_are_reused_running_ones_are_not(
    github: GitHubStub, make: Make
) -> None:
    github.add_run(1, SHA)
    github.add_job(1, 10, "test")
    backend = make()
    first = await backend.runs_for(SHA)
    asked = len(github.seen)
    assert await backend.runs_for(SHA) == first
    assert len(github.seen) == asked  # nothing asked again

    github.add_run(2, OTHER, status="queued", conclusion=None)
    await backend.runs_for(OTHER)
    asked = len(github.seen)
    await backend.runs_for(OTHER)
    assert len(github.seen) > asked


async def test_no_runs_is_an_empty_list(make: Make) -> None:
    assert await make().runs_for("c" * 40) == []


async def test_a_next_link_to_another_host_is_not_followed(github: GitHubStub, make: Make) -> None:
    github.add_run(1, SHA)
    github.scripted.append(
        _page_pointing_at("http://evil.example/repos/acme/fraud-model/actions/runs?page=2")
    )
    with pytest.raises(InvalidResponse, match="another host") as caught:
        await make().runs_for(SHA)
    assert "evil.example" in str(caught.value) and TOKEN not in str(caught.value)


def _page_pointing_at(url: str):  # type: ignore[no-untyped-def]
    from github_stub import Scripted

    return Scripted(
        "GET",
        r".*/actions/runs",
        200,
        ("actions/list-workflow-runs-for-repo", {"total_count": 2, "workflow_runs": []}),
        {"Link": f'<{url}>; rel="next"'},
    )


async def test_a_run_missing_fields_is_an_invalid_response(github: GitHubStub, make: Make) -> None:
    from github_stub import Scripted

    github.scripted.append(
        Scripted(
            "GET",
            r".*/actions/runs",
            200,
            {"total_count": 1, "workflow_runs": [{"id": 1, "status": "completed"}]},
            checked=False,  # deliberately not what GitHub sends
        )
    )
    with pytest.raises(InvalidResponse, match=r"items\[0\]\.head_sha"):
        await make().runs_for(SHA)


def test_the_schemas_reject_what_github_would_not_send(github: GitHubStub) -> None:
    """The validation the stub relies on has teeth."""
    subset = OpenApiSubset()
    run = github.add_run(1, SHA)
    job = github.add_job(1, 2, "test")
    assert subset.errors("actions/get-workflow-run", run) == []
    assert (
        subset.errors("actions/list-jobs-for-workflow-run", {"total_count": 1, "jobs": [job]}) == []
    )
    broken_job = {**job, "status": "exploded"}
    assert subset.errors(
        "actions/list-jobs-for-workflow-run", {"total_count": 1, "jobs": [broken_job]}
    )
    no_sha = {k: v for k, v in run.items() if k != "head_sha"}
    assert any("head_sha" in e for e in subset.errors("actions/get-workflow-run", no_sha))
    assert subset.errors("actions/get-workflow-run", {**run, "created_at": "yesterday"})
    assert subset.errors("actions/get-workflow-run", {**run, "head_commit": None}) == []
