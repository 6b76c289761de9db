"""GitHub Actions as the console's ``ci`` and ``deploy`` backend: workflow runs and jobs of a
commit, and a ``workflow_dispatch`` whose run is followed to its end
(docs/plugins/github-actions.md)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.credentials import CredentialOptions
from console.plugins.deploy import check_templates

_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class GitHubActionsConfig(CredentialOptions):
    """``[backends.ci]`` / ``[backends.deploy]`` with ``type = "github-actions"``."""

    repository: str = Field(description="OWNER/NAME of the repository")
    api_url: str = Field(
        default="https://api.github.com",
        description="REST API root; GitHub Enterprise Server: https://HOST/api/v3",
    )
    api_version: str = "2022-11-28"
    request_timeout_seconds: float | None = Field(
        default=None, gt=0, description="per HTTP request (default: the console's timeout)"
    )
    workflows: list[str] = Field(
        default_factory=list,
        description="only these workflows (names or file names) count as CI; empty: all",
    )
    jobs: bool = Field(default=True, description="also read each run's jobs")
    per_page: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=10, ge=1, le=100)
    cache_seconds: float = Field(
        default=30.0, ge=0, description="how long finished runs of a commit are reused"
    )
    deploy_workflow: str | None = Field(
        default=None, description="workflow file name or id to dispatch, e.g. deploy.yml"
    )
    deploy_ref: str = "main"
    deploy_inputs: dict[str, str] = Field(
        default_factory=lambda: {"model": "{model}", "version": "{version}", "stage": "{stage}"},
        description="workflow_dispatch inputs; {model} {version} {stage} {actor} substituted",
    )
    return_run_details: bool = Field(
        default=True,
        description="ask the dispatch to name the run it started (older servers: false)",
    )
    wait: bool = Field(default=True, description="follow the run until it completes")
    poll_seconds: float = Field(default=5.0, gt=0)
    find_run_seconds: float = Field(default=60.0, gt=0)
    timeout_seconds: float = Field(
        default=1800.0, gt=0, description="the whole deploy: dispatch, find the run, follow it"
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.fullmatch(value):
            raise ValueError("write it as OWNER/NAME, e.g. acme/fraud-model")
        return value

    @field_validator("deploy_inputs")
    @classmethod
    def _inputs(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 25:
            raise ValueError("GitHub accepts at most 25 workflow_dispatch inputs")
        check_templates(value)
        return value


def build(config: GitHubActionsConfig, ctx: BackendContext) -> Any:
    """Factory used by the console: one GitHubActions backend for ``config``."""
    from cd4ml_console_github_actions.actions import GitHubActions

    return GitHubActions(config, ctx)


PLUGIN = BackendPlugin(
    name="github-actions",
    kinds=frozenset({"ci", "deploy"}),
    api_version=API_VERSION,
    config_model=GitHubActionsConfig,
    factory=build,
    description="GitHub Actions workflow runs; deploy by workflow_dispatch",
)

__all__ = ["PLUGIN", "GitHubActionsConfig", "build"]
