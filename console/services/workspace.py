"""A Workspace: the config bound to backend instances built by their plugins."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from console.config import KIND_NAMES, ConfigError, ConsoleConfig, config_label
from console.config.load import format_validation_error
from console.plugins import BackendContext, PluginCatalog, discover
from console.ports import (
    AuditStore,
    BackendError,
    CIProvider,
    CodeRepo,
    DataVersions,
    Deployer,
    MetricsSource,
    ModelRegistry,
    Notifier,
)

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """The backends of one workspace by kind; a kind that could not be built has a problem."""

    config: ConsoleConfig
    backends: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    catalog: PluginCatalog | None = None

    def get(self, kind: str) -> Any | None:
        """The backend of ``kind`` untyped; inside the console use the typed accessors below."""
        return self.backends.get(kind)

    # One accessor per kind, typed as its port (None: not configured, or see ``problems``).
    @property
    def code(self) -> CodeRepo | None:
        return self.backends.get("code")

    @property
    def registry(self) -> ModelRegistry | None:
        return self.backends.get("registry")

    @property
    def data(self) -> DataVersions | None:
        return self.backends.get("data")

    @property
    def ci(self) -> CIProvider | None:
        return self.backends.get("ci")

    @property
    def metrics(self) -> MetricsSource | None:
        return self.backends.get("metrics")

    @property
    def deploy(self) -> Deployer | None:
        return self.backends.get("deploy")

    @property
    def audit(self) -> AuditStore | None:
        return self.backends.get("audit")

    @property
    def notify(self) -> Notifier | None:
        return self.backends.get("notify")

    @property
    def label(self) -> str:
        return config_label(self.config)

    async def aclose(self) -> None:
        seen: set[int] = set()
        for backend in self.backends.values():
            if id(backend) in seen:
                continue
            seen.add(id(backend))
            try:
                await asyncio.wait_for(backend.aclose(), 3)
            except Exception:  # closing must never mask what happened before
                log.exception("closing %s failed", getattr(backend, "name", backend))
        from console.git.cmd import reap_killed

        await reap_killed()  # git processes killed when a call gave up

    async def __aenter__(self) -> Workspace:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def validate_backend_options(config: ConsoleConfig, catalog: PluginCatalog) -> dict[str, Any]:
    """Check every configured backend's options against its plugin's model.

    Returns validated option objects by kind; raises ConfigError naming the key otherwise.
    """
    label = config_label(config)
    out: dict[str, Any] = {}
    for kind in KIND_NAMES:
        bcfg = config.backend(kind)
        if bcfg is None:
            continue
        plugin = catalog.get(bcfg.type)
        if plugin is None:
            known = ", ".join(p.name for p in catalog.providing(kind)) or "none installed"
            broken = [p for p in catalog.problems if p.entry_point == bcfg.type]
            why = f" (the plugin is installed but unusable: {broken[0].reason})" if broken else ""
            raise ConfigError(
                f"{label}: backends.{kind}.type: no backend plugin named {bcfg.type!r}{why}; "
                f"for {kind} use one of: {known} (see `cd4ml-console plugins`)"
            )
        if kind not in plugin.kinds:
            raise ConfigError(
                f"{label}: backends.{kind}.type: plugin {plugin.name!r} provides "
                f"{', '.join(sorted(plugin.kinds))}, not {kind}"
            )
        try:
            out[kind] = plugin.config_model.model_validate(bcfg.options)
        except ValidationError as exc:
            text = format_validation_error(label, exc)
            text = text.replace("\n  ", f"\n  backends.{kind}.")
            raise ConfigError(text) from None
    return out


def open_workspace(config: ConsoleConfig, catalog: PluginCatalog | None = None) -> Workspace:
    """Build every configured backend. Bad options raise ConfigError; a backend whose factory
    fails is recorded as a problem of its kind and the rest still work."""
    if catalog is None:
        wanted = {b.type for b in (config.backend(k) for k in KIND_NAMES) if b is not None}
        catalog = discover(names=wanted)
        if not wanted <= set(catalog.plugins):  # named differently, or broken: say it fully
            catalog = discover()
    options = validate_backend_options(config, catalog)
    ctx = BackendContext(
        workspace=config.root,
        state_dir=config.state_path,
        config=config,
        timeout=config.timeout_seconds,
    )
    ws = Workspace(config=config, catalog=catalog)
    for kind, opts in options.items():
        bcfg = config.backend(kind)
        assert bcfg is not None
        plugin = catalog.plugins[bcfg.type]
        try:
            ws.backends[kind] = plugin.factory(opts, ctx)
        except BackendError as exc:
            ws.problems[kind] = str(exc)
        except Exception as exc:
            log.exception("building %s backend %s failed", kind, plugin.name)
            ws.problems[kind] = f"{plugin.name}: could not start: {type(exc).__name__}: {exc}"
    return ws
