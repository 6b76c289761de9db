"""MLflow Model Registry as a cd4ml-console registry backend, over MLflow's REST API.

The plugin never imports ``mlflow``: it speaks ``/api/2.0/mlflow/`` with one shared
``httpx.AsyncClient``. Stages are MLflow aliases (``stage_aliases`` maps console stage ->
alias). See docs/plugins/mlflow.md.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.credentials import CredentialOptions

_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")


def alias_problem(alias: str) -> str | None:
    """Why MLflow would refuse ``alias`` as an alias name, or None."""
    if not _ALIAS.match(alias):
        return "MLflow aliases may only contain letters, digits, '_' and '-'"
    if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        return "the alias is reserved by MLflow"
    return None


class MlflowConfig(CredentialOptions):
    """``[backends.registry]`` with ``type = "mlflow"``."""

    url: str
    auth: Literal["auto", "none", "basic", "bearer"] = "auto"
    token_env: str | None = "MLFLOW_TRACKING_TOKEN"
    username_env: str | None = "MLFLOW_TRACKING_USERNAME"
    # console stage -> MLflow alias; stages not listed use an alias of the same name.
    stage_aliases: dict[str, str] = Field(default_factory=dict)
    page_size: int = Field(default=1000, ge=1, le=1000)
    model_filter: str | None = None
    run_details: bool = True
    verify_tls: bool | str = True
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL like http://mlflow.internal:5000")
        if parts.username or parts.password:
            raise ValueError(
                "do not put credentials in the URL; store them with `cd4ml-console login mlflow`"
            )
        return value.rstrip("/")

    @field_validator("stage_aliases")
    @classmethod
    def _valid_aliases(cls, value: dict[str, str]) -> dict[str, str]:
        for stage, alias in value.items():
            problem = alias_problem(alias)
            if problem:
                raise ValueError(f"alias {alias!r} for stage {stage!r}: {problem}")
        seen: dict[str, str] = {}
        for stage, alias in value.items():
            if alias in seen:
                raise ValueError(f"stages {seen[alias]!r} and {stage!r} both map to {alias!r}")
            seen[alias] = stage
        return value


def build(config: MlflowConfig, ctx: BackendContext) -> Any:
    """Factory: import the implementation lazily to keep the console's startup fast."""
    from cd4ml_console_mlflow.registry import MlflowRegistry

    return MlflowRegistry(config, ctx)


PLUGIN = BackendPlugin(
    name="mlflow",
    kinds=frozenset({"registry"}),
    api_version=API_VERSION,
    config_model=MlflowConfig,
    factory=build,
    description="MLflow Model Registry (REST; aliases as stages)",
)

__all__ = ["PLUGIN", "MlflowConfig", "alias_problem"]
