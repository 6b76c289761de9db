"""Declarations of the embedded backends, registered through the same entry-point group as
third-party plugins. Implementations are imported only when a backend is built; their option
classes live in :mod:`console.plugins.options`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.options import (
    CommandDeployConfig,
    CommandNotifyConfig,
    DvcConfig,
    GitConfig,
    GtoConfig,
    RunsFolderConfig,
    ScrapeConfig,
    SqliteAuditConfig,
    WebhookNotifyConfig,
)

if TYPE_CHECKING:
    from console.backends.command_deploy import CommandDeployer
    from console.backends.dvc_data import DvcData
    from console.backends.git_code import GitCodeRepo
    from console.backends.gto_registry import GtoRegistry
    from console.backends.notify_command import CommandNotifier
    from console.backends.notify_webhook import WebhookNotifier
    from console.backends.runs_ci import RunsFolderCI
    from console.backends.scrape_metrics import ScrapeMetrics
    from console.backends.sqlite_audit import SqliteAuditStore


def _git(cfg: GitConfig, ctx: BackendContext) -> GitCodeRepo:
    from console.backends.git_code import GitCodeRepo

    return GitCodeRepo(cfg, ctx)


def _gto(cfg: GtoConfig, ctx: BackendContext) -> GtoRegistry:
    from console.backends.gto_registry import GtoRegistry

    return GtoRegistry(cfg, ctx)


def _dvc(cfg: DvcConfig, ctx: BackendContext) -> DvcData:
    from console.backends.dvc_data import DvcData

    return DvcData(cfg, ctx)


def _runs(cfg: RunsFolderConfig, ctx: BackendContext) -> RunsFolderCI:
    from console.backends.runs_ci import RunsFolderCI

    return RunsFolderCI(cfg, ctx)


def _scrape(cfg: ScrapeConfig, ctx: BackendContext) -> ScrapeMetrics:
    from console.backends.scrape_metrics import ScrapeMetrics

    return ScrapeMetrics(cfg, ctx)


def _sqlite_audit(cfg: SqliteAuditConfig, ctx: BackendContext) -> SqliteAuditStore:
    from console.backends.sqlite_audit import SqliteAuditStore

    return SqliteAuditStore(cfg, ctx)


def _command_deploy(cfg: CommandDeployConfig, ctx: BackendContext) -> CommandDeployer:
    from console.backends.command_deploy import CommandDeployer

    return CommandDeployer(cfg, ctx)


def _webhook(cfg: WebhookNotifyConfig, ctx: BackendContext) -> WebhookNotifier:
    from console.backends.notify_webhook import WebhookNotifier

    return WebhookNotifier(cfg, ctx)


def _command_notify(cfg: CommandNotifyConfig, ctx: BackendContext) -> CommandNotifier:
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
