"""GitLab CI as the console's ``ci`` and ``deploy`` backend: pipelines and jobs of a commit,
and a pipeline trigger with variables whose pipeline is followed to its end
(docs/plugins/gitlab-ci.md)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.credentials import CredentialOptions
from console.plugins.deploy import check_templates

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GitLabCIConfig(CredentialOptions):
    """``[backends.ci]`` / ``[backends.deploy]`` with ``type = "gitlab-ci"``."""

    project: str = Field(description="numeric project id or its path, e.g. ml/fraud-model")
    url: str = Field(default="https://gitlab.com", description="the GitLab instance")
    request_timeout_seconds: float | None = Field(
        default=None, gt=0, description="per HTTP request (default: the console's timeout)"
    )
    sources: list[str] = Field(
        default_factory=list,
        description="only pipelines from these sources count as CI (push, web, ...); empty: all",
    )
    jobs: bool = Field(default=True, description="also read each pipeline's jobs")
    per_page: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=10, ge=1, le=100)
    cache_seconds: float = Field(default=30.0, ge=0)
    trigger: Literal["trigger_token", "api"] = Field(
        default="trigger_token",
        description="trigger_token: POST /trigger/pipeline with a pipeline trigger token; "
        "api: POST /pipeline with the API token",
    )
    trigger_credential: str | None = Field(
        default=None, description="name of the trigger token's credential (default: NAME-trigger)"
    )
    trigger_token_env: str | None = None
    deploy_ref: str = "main"
    deploy_variables: dict[str, str] = Field(
        default_factory=lambda: {
            "CD4ML_MODEL": "{model}",
            "CD4ML_VERSION": "{version}",
            "CD4ML_STAGE": "{stage}",
            "CD4ML_ACTOR": "{actor}",
        },
        description="CI/CD variables of the deploy pipeline; {model} {version} {stage} {actor}",
    )
    wait: bool = Field(default=True, description="follow the pipeline until it finishes")
    poll_seconds: float = Field(default=5.0, gt=0)
    timeout_seconds: float = Field(
        default=1800.0, gt=0, description="the whole deploy: trigger and follow the pipeline"
    )

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not value or any(c.isspace() for c in value):
            raise ValueError("a numeric id or a path like group/project")
        return value

    @field_validator("deploy_variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _VARIABLE.fullmatch(name):
                raise ValueError(f"{name!r} is not a CI/CD variable name (letters, digits, _)")
        check_templates(value)
        return value


def build(config: GitLabCIConfig, ctx: BackendContext) -> Any:
    """Factory used by the console: one GitLabCI backend for ``config``."""
    from cd4ml_console_gitlab_ci.pipelines import GitLabCI

    return GitLabCI(config, ctx)


PLUGIN = BackendPlugin(
    name="gitlab-ci",
    kinds=frozenset({"ci", "deploy"}),
    api_version=API_VERSION,
    config_model=GitLabCIConfig,
    factory=build,
    description="GitLab CI pipelines; deploy by pipeline trigger",
)

__all__ = ["PLUGIN", "GitLabCIConfig", "build"]
