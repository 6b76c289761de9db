"""Backend plugins, discovered through the ``cd4ml_console.backends`` entry-point group.

The embedded backends register through the same group as third-party plugins: one mechanism.
A plugin that fails to load, or declares an API version this console does not speak, is
reported by :func:`discover` and never raises.

This package is the one kit a plugin builds on (docs/plugins.md, "What a plugin may import"):
the contract here; ``http`` (HTTP plumbing), ``credentials`` (secrets), ``deploy`` (a deploy's
placeholders), ``audit`` (the hash chain an audit store keeps) and ``options`` (the embedded
backends' option classes) beside it. Importing this package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # the config sits below the kit (the layers); a plugin gets it, never imports it
    from console.config import ConsoleConfig
    from console.ports import Backend

ENTRY_POINT_GROUP = "cd4ml_console.backends"
API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})


class PluginConfig(BaseModel):
    """Base for a plugin's config section: unknown keys are errors that name the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BackendContext:
    """What a factory gets besides its own config: where the workspace is and how it is set up."""

    workspace: Path
    state_dir: Path
    config: ConsoleConfig | None  # None where there is no workspace config (the demo's server)
    timeout: float = 5.0


@dataclass(frozen=True)
class BackendPlugin:
    """What a plugin declares. Export one of these from the entry point."""

    name: str
    kinds: frozenset[str]
    api_version: int
    config_model: type[PluginConfig]
    # Given an instance of ``config_model`` (each plugin's own class: Any here) and the context;
    # returns the backend, which implements the port of each kind in ``kinds``.
    factory: Callable[[Any, BackendContext], Backend]
    description: str = ""
    distribution: str = ""


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be used, with the reason in words."""

    entry_point: str
    distribution: str
    reason: str


@dataclass
class PluginCatalog:
    """The result of discovery: usable plugins by name, and problems found on the way."""

    plugins: dict[str, BackendPlugin] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)

    def get(self, name: str) -> BackendPlugin | None:
        return self.plugins.get(name)

    def providing(self, kind: str) -> list[BackendPlugin]:
        return [p for p in self.plugins.values() if kind in p.kinds]


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ""


def load_entry_point(ep: EntryPoint) -> BackendPlugin | PluginProblem:
    """Load one entry point into a plugin, or say why it can not be used."""
    from console.ports import KINDS

    dist = _dist_name(ep)
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must never take the console down
        return PluginProblem(
            ep.name, dist, f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
        )
    if callable(obj) and not isinstance(obj, BackendPlugin):
        try:
            obj = obj()
        except Exception as exc:
            return PluginProblem(ep.name, dist, f"{ep.value}() raised {type(exc).__name__}: {exc}")
    if not isinstance(obj, BackendPlugin):
        return PluginProblem(
            ep.name,
            dist,
            f"{ep.value} is a {type(obj).__name__}, not a console.plugins.BackendPlugin",
        )
    if obj.api_version not in SUPPORTED_API_VERSIONS:
        return PluginProblem(
            ep.name,
            dist,
            f"declares api_version {obj.api_version}; this console speaks "
            f"{', '.join(map(str, sorted(SUPPORTED_API_VERSIONS)))} — upgrade the plugin or the console",
        )
    unknown = set(obj.kinds) - set(KINDS)
    if unknown or not obj.kinds:
        return PluginProblem(
            ep.name, dist, f"declares unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}"
        )
    if not (isinstance(obj.config_model, type) and issubclass(obj.config_model, BaseModel)):
        return PluginProblem(ep.name, dist, "config_model is not a pydantic model class")
    if obj.distribution != dist:
        obj = BackendPlugin(**{**obj.__dict__, "distribution": dist})
    return obj


def discover(
    entries: Mapping[str, EntryPoint] | None = None, *, names: Collection[str] | None = None
) -> PluginCatalog:
    """Find every installed backend plugin (only those whose entry point is in ``names``, when
    given: opening a workspace imports just the plugins it uses). Never raises."""
    catalog = PluginCatalog()
    eps = (
        list(entries.values())
        if entries is not None
        else list(entry_points(group=ENTRY_POINT_GROUP))
    )
    if names is not None:
        eps = [ep for ep in eps if ep.name in names]
    seen: set[str] = set()
    for ep in sorted(eps, key=lambda e: e.name):
        result = load_entry_point(ep)
        if isinstance(result, PluginProblem):
            catalog.problems.append(result)
            continue
        if result.name in seen:
            catalog.problems.append(
                PluginProblem(
                    ep.name, _dist_name(ep), f"duplicate plugin name {result.name!r}; ignored"
                )
            )
            continue
        seen.add(result.name)
        catalog.plugins[result.name] = result
    return catalog


__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "BackendContext",
    "BackendPlugin",
    "PluginCatalog",
    "PluginConfig",
    "PluginProblem",
    "discover",
]
