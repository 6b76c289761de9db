"""A Workspace: the config bound to backend instances built by their plugins."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from pydantic import ValidationError

from console.config import KIND_NAMES, ConfigError, ConsoleConfig, config_label
from console.config.load import format_validation_error
from console.plugins import BackendContext, PluginCatalog, PluginConfig, discover
from console.ports import (
    AuditStore,
    Backend,
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
P = TypeVar("P", bound=Backend)


@dataclass(frozen=True)
class Kind(Generic[P]):
    """A kind of backend named with the port it is used through: ``ws.port(REGISTRY)`` is a
    ``ModelRegistry | None``, and a call made through it is type-checked against the port."""

    name: str


CODE: Kind[CodeRepo] = Kind("code")
REGISTRY: Kind[ModelRegistry] = Kind("registry")
DATA: Kind[DataVersions] = Kind("data")
CI: Kind[CIProvider] = Kind("ci")
METRICS: Kind[MetricsSource] = Kind("metrics")
DEPLOY: Kind[Deployer] = Kind("deploy")
AUDIT: Kind[AuditStore] = Kind("audit")
NOTIFY: Kind[Notifier] = Kind("notify")


@dataclass
class Workspace:
    """The backends of one workspace by kind; a kind that could not be built has a problem."""

    config: ConsoleConfig
    backends: dict[str, Backend] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    catalog: PluginCatalog | None = None

    def get(self, kind: str) -> Backend | None:
        """The backend of ``kind`` by its name; to call its port use :meth:`port` or the typed
        accessors below."""
        return self.backends.get(kind)

    def port(self, kind: Kind[P]) -> P | None:
        """The backend of ``kind`` as its port (None: not configured, or see ``problems``).
        The plugin that built it declared the kind (console.plugins.BackendPlugin.kinds)."""
        return cast("P | None", self.backends.get(kind.name))

    # One accessor per kind, typed as its port.
    @property
    def code(self) -> CodeRepo | None:
        return self.port(CODE)

    @property
    def registry(self) -> ModelRegistry | None:
        return self.port(REGISTRY)

    @property
    def data(self) -> DataVersions | None:
        return self.port(DATA)

    @property
    def ci(self) -> CIProvider | None:
        return self.port(CI)

    @property
    def metrics(self) -> MetricsSource | None:
        return self.port(METRICS)

    @property
    def deploy(self) -> Deployer | None:
        return self.port(DEPLOY)

    @property
    def audit(self) -> AuditStore | None:
        return self.port(AUDIT)

    @property
    def notify(self) -> Notifier | None:
        return self.port(NOTIFY)

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


def validate_backend_options(
    config: ConsoleConfig, catalog: PluginCatalog
) -> dict[str, PluginConfig]:
    """Check every configured backend's options against its plugin's model.

    Returns validated option objects by kind; raises ConfigError naming the key otherwise.
    """
    label = config_label(config)
    out: dict[str, PluginConfig] = {}
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
