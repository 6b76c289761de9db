"""Declarations of the embedded backends, registered through the same entry-point group as
third-party plugins. Implementations are imported only when a backend is built."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from console.credentials import CredentialOptions
from console.plugins import API_VERSION, BackendContext, BackendPlugin, PluginConfig


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


class ScrapeConfig(PluginConfig):
    """A Prometheus text-exposition endpoint scraped directly."""

    url: str
    interval_seconds: float = Field(default=5.0, gt=0)
    history: int = Field(default=360, ge=2, le=100_000)
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


def _git(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.git_code import GitCodeRepo

    return GitCodeRepo(cfg, ctx)


def _gto(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.gto_registry import GtoRegistry

    return GtoRegistry(cfg, ctx)


def _dvc(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.dvc_data import DvcData

    return DvcData(cfg, ctx)


def _runs(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.runs_ci import RunsFolderCI

    return RunsFolderCI(cfg, ctx)


def _scrape(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.scrape_metrics import ScrapeMetrics

    return ScrapeMetrics(cfg, ctx)


def _sqlite_audit(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.sqlite_audit import SqliteAuditStore

    return SqliteAuditStore(cfg, ctx)


def _command_deploy(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.command_deploy import CommandDeployer

    return CommandDeployer(cfg, ctx)


def _webhook(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.notify_webhook import WebhookNotifier

    return WebhookNotifier(cfg, ctx)


def _command_notify(cfg: Any, ctx: BackendContext) -> Any:
    from console.backends.notify_command import CommandNotifier

    return CommandNotifier(cfg, ctx)


GIT = BackendPlugin(
    "git", frozenset({"code"}), API_VERSION, GitConfig, _git, "local git repository"
)
GTO = BackendPlugin(
    "gto", frozenset({"registry"}), API_VERSION, GtoConfig, _gto, "GTO git-tag model registry"
)
DVC = BackendPlugin(
    "dvc", frozenset({"data"}), API_VERSION, DvcConfig, _dvc, "DVC files, params and metrics in git"
)
RUNS_FOLDER = BackendPlugin(
    "runs-folder", frozenset({"ci"}), API_VERSION, RunsFolderConfig, _runs, "CI run records folder"
)
SCRAPE = BackendPlugin(
    "scrape", frozenset({"metrics"}), API_VERSION, ScrapeConfig, _scrape, "direct /metrics scrape"
)
SQLITE_AUDIT = BackendPlugin(
    "sqlite-audit",
    frozenset({"audit"}),
    API_VERSION,
    SqliteAuditConfig,
    _sqlite_audit,
    "hash-chained SQLite audit log",
)
COMMAND_DEPLOY = BackendPlugin(
    "command-deploy",
    frozenset({"deploy"}),
    API_VERSION,
    CommandDeployConfig,
    _command_deploy,
    "run a command as the deploy effect",
)
WEBHOOK = BackendPlugin(
    "webhook",
    frozenset({"notify"}),
    API_VERSION,
    WebhookNotifyConfig,
    _webhook,
    "notify a Slack/Mattermost-compatible incoming webhook",
)
COMMAND_NOTIFY = BackendPlugin(
    "command-notify",
    frozenset({"notify"}),
    API_VERSION,
    CommandNotifyConfig,
    _command_notify,
    "notify by running a command (the message as JSON on stdin)",
)
