"""The deploy effect: workflow_dispatch with model/version/stage inputs, then the run it
started is found (by its id, or by listing when the server only answers 204) and followed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cd4ml_console_github_actions.actions import GitHubActions
from github_stub import GitHubStub

from console.ports import BackendError, Unreachable

Make = Callable[..., GitHubActions]


@pytest.fixture
def deploy_workflow(github: GitHubStub) -> dict[str, Any]:
    return github.add_workflow("deploy.yml", "Deploy model", 77)


def dispatches(github: GitHubStub) -> list[Any]:
    return [s.body for s in github.seen if s.method == "POST"]


async def test_dispatch_names_its_run_which_is_followed_to_success(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    said = await make(deploy_workflow="deploy.yml", deploy_ref="release").deploy(
        "fraud", "v2.0.0", "production", actor="alice"
    )
    assert said.startswith("Deploy model run #1 succeeded: https://github.example/")
    assert dispatches(github) == [
        {
            "ref": "release",
            "inputs": {"model": "fraud", "version": "v2.0.0", "stage": "production"},
            "return_run_details": True,
        }
    ]
    polls = [s for s in github.seen if s.method == "GET" and s.path.endswith("/runs/9001")]
    assert len(polls) == 3  # queued -> in_progress -> completed


async def test_a_204_dispatch_finds_the_new_run_by_listing(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    github.add_run(5, "e" * 40, workflow="deploy.yml", event="workflow_dispatch")  # an old one
    backend = make(
        deploy_workflow="deploy.yml",
        return_run_details=False,
        deploy_inputs={"artifact": "{model}@{version}", "environment": "{stage}", "by": "{actor}"},
    )
    said = await backend.deploy("fraud", "v2.0.0", "production", actor="alice")
    assert "run #1 succeeded" in said
    (body,) = dispatches(github)
    assert body == {
        "ref": "main",
        "inputs": {"artifact": "fraud@v2.0.0", "environment": "production", "by": "alice"},
    }
    listings = [s for s in github.seen if s.path.endswith("/workflows/deploy.yml/runs")]
    assert listings[0].query == {"event": "workflow_dispatch", "branch": "main", "per_page": "20"}


async def test_a_failed_deploy_run_is_an_error_with_its_link(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    github.dispatch_conclusion = "failure"
    with pytest.raises(BackendError, match=r"run #1 concluded failure: https://github\.example/"):
        await make(deploy_workflow="deploy.yml").deploy("fraud", "v2", "production", actor="a")


async def test_a_run_that_never_appears_leaves_the_outcome_unknown(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    github.dispatch_creates_run = False
    backend = make(deploy_workflow="deploy.yml", return_run_details=False, find_run_seconds=0.1)
    with pytest.raises(BackendError, match=r"did not appear within 0\.1s; the outcome is unknown"):
        await backend.deploy("fraud", "v2", "production", actor="alice")
    assert len(dispatches(github)) == 1


async def test_a_run_still_going_at_the_deadline_is_reported_not_retried(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    backend = make(deploy_workflow="deploy.yml", timeout_seconds=0.2)
    original = github._advance
    github._advance = lambda run: None  # type: ignore[method-assign]
    try:
        with pytest.raises(Unreachable, match=r"still queued after 0.2s.*outcome is unknown"):
            await backend.deploy("fraud", "v2", "production", actor="alice")
    finally:
        github._advance = original  # type: ignore[method-assign]
    assert len(dispatches(github)) == 1


async def test_without_waiting_the_queued_run_is_reported(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    said = await make(deploy_workflow="deploy.yml", wait=False).deploy(
        "fraud", "v2", "production", actor="alice"
    )
    assert said.startswith("Deploy model run #1 queued: https://")


async def test_no_deploy_workflow_is_a_clear_error(make: Make) -> None:
    with pytest.raises(BackendError, match="no deploy workflow") as caught:
        await make().deploy("fraud", "v2", "production", actor="alice")
    assert "deploy_workflow" in caught.value.hint


async def test_a_rejected_dispatch_names_the_reason(
    github: GitHubStub, make: Make, deploy_workflow: dict[str, Any]
) -> None:
    from github_stub import DOCS, Scripted

    github.scripted.append(
        Scripted(
            "POST",
            r".*/dispatches",
            422,
            (
                "validation-error",
                {"message": 'Unexpected inputs provided: ["stage"]', "documentation_url": DOCS},
            ),
        )
    )
    with pytest.raises(BackendError, match=r"rejected \(HTTP 422: Unexpected inputs provided"):
        await make(deploy_workflow="deploy.yml").deploy("fraud", "v2", "production", actor="a")
