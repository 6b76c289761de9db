"""The option classes of the embedded backends (their config sections): a plugin's options
extend :class:`~console.plugins.PluginConfig`, or
:class:`~console.plugins.credentials.CredentialOptions` when they name a secret."""

from __future__ import annotations

from pydantic import Field, field_validator

from console.plugins import PluginConfig
from console.plugins.credentials import CredentialOptions


class GitConfig(PluginConfig):
    """The local git repository (defaults to the workspace)."""

    path: str | None = None


class GtoConfig(PluginConfig):
    """GTO's git-tag registry in the workspace repo."""

    path: str | None = None
    # The remote that is the registry's shared truth: fetched before every release decision,
    # written with one atomic push. None: ``origin`` when the repository has it; false: local
    # only (the console then says how to push each tag it writes).
    push_remote: str | bool | None = None


class DvcConfig(PluginConfig):
    """Where each model's files live. Each entry is a list of candidate templates; the first
    that exists at the commit wins. ``{model}`` is the model name, ``{dir}`` the folder of the
    artifact's path from ``artifacts.yaml`` (empty when unknown)."""

    params: list[str] = Field(
        default_factory=lambda: ["models/{model}/params.yaml", "{dir}/params.yaml", "params.yaml"]
    )
    metrics: list[str] = Field(
        default_factory=lambda: [
            "models/{model}/metrics.json",
            "models/{model}/metrics.yaml",
            "{dir}/metrics.json",
            "metrics.json",
        ]
    )
    data: list[str] = Field(
        default_factory=lambda: [
            "data/{model}.dvc",
            "data/{model}.csv.dvc",
            "data/{model}.parquet.dvc",
            "models/{model}/dvc.lock",
            "dvc.lock",
        ]
    )
    schema_file: list[str] = Field(
        default_factory=lambda: ["data/{model}/schema.json", "data/schema.json"], alias="schema"
    )
    stats: list[str] = Field(default_factory=lambda: ["data/{model}/stats.json", "data/stats.json"])


class RunsFolderConfig(PluginConfig):
    """A folder of CI run records, one JSON file per run (docs/runs-folder.md)."""

    path: str = ".ci-runs"


class ServingMetricNames(PluginConfig):
    """The serving metrics' names and labels (docs/plugins/prometheus.md), as the demo server
    exports them: one home for every metrics backend that reads them (scrape, Prometheus)."""

    latency_metric: str = "model_request_latency_seconds"
    requests_metric: str = "model_requests_total"
    prediction_metric: str = "model_prediction_score"
    model_label: str = "model"
    stage_label: str = "stage"
    version_label: str = "version"
    outcome_label: str = "outcome"
    error_value: str = "error"
    shadow_metric: str = "model_shadow_decisions_total"
    agreement_label: str = "agreement"
    differ_value: str = "differ"
    baseline_label: str = "baseline_version"


class ScrapeConfig(ServingMetricNames):
    """A Prometheus text-exposition endpoint scraped directly."""

    url: str
    interval_seconds: float = Field(default=5.0, gt=0)
    history: int = Field(default=360, ge=2, le=100_000)
    window_history_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="how far back window() can look"
    )


class SqliteAuditConfig(PluginConfig):
    """Hash-chained SQLite audit log (default: STATE_DIR/audit.sqlite)."""

    path: str | None = None
    allow_network_fs: bool = False


class CommandDeployConfig(PluginConfig):
    """Run a command as the deploy effect; {model}, {version}, {stage} are substituted."""

    command: list[str]
    timeout_seconds: float = Field(default=300.0, gt=0)


class WebhookNotifyConfig(CredentialOptions):
    """POST a JSON message to a Slack/Mattermost-compatible incoming webhook. A secret part of
    the URL is written ``{token}`` and looked up like every credential (docs/credentials.md)."""

    url: str
    timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    events: list[str] | None = None  # only these (request, approve, ...); None: all

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("use an http:// or https:// URL")
        if "{" in value.replace("{token}", ""):
            raise ValueError("the only placeholder a URL may hold is {token}")
        return value


class CommandNotifyConfig(PluginConfig):
    """Run a command (no shell) with the JSON message on its standard input."""

    command: list[str]
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    events: list[str] | None = None
