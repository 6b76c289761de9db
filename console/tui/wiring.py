"""What the app wires once the workspace is open: the services the screens call, and the
catalog of names the palette and `:` offer. Built in a worker thread (see ConsoleApp)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.identity import IdentityProvider
    from console.services.health import HealthService
    from console.services.incidents import IncidentService
    from console.services.lineage import LineageService
    from console.services.live import LiveService
    from console.services.overview import OverviewService
    from console.services.release import ReleaseService
    from console.services.timeline import TimelineService
    from console.services.workspace import Workspace
    from console.tui.clock import Clock


@dataclass
class Services:
    """The use cases the screens call; built once the workspace is open."""

    overview: OverviewService
    lineage: LineageService
    live: LiveService
    timeline: TimelineService
    release: ReleaseService
    health: HealthService
    incidents: IncidentService


@dataclass
class Catalog:
    """What the app has learnt so far, for the palette and `:` (names, not backends)."""

    models: dict[str, str] = field(default_factory=dict)  # name -> description
    versions: dict[str, list[tuple[str, str]]] = field(
        default_factory=dict
    )  # model -> [(v, stage)]


def build_services(
    workspace: Workspace,
    clock: Clock,
    *,
    release: ReleaseService | None = None,
    identity: IdentityProvider | None = None,
    read_only: bool = False,
) -> Services:
    from console.services.lineage import LineageService
    from console.services.live import LiveService
    from console.services.overview import OverviewService
    from console.services.release import ReleaseService
    from console.services.timeline import TimelineService

    overview = OverviewService(workspace, clock=clock)
    if release is None:  # release decisions, TTLs and audit times: the system clock, always
        release = ReleaseService(workspace, identity=identity, read_only=read_only)
    from console.services.health import HealthService
    from console.services.incidents import IncidentService

    return Services(
        overview=overview,
        lineage=LineageService(overview),
        live=LiveService(overview),
        timeline=TimelineService(overview),
        release=release,
        health=HealthService(overview),
        incidents=IncidentService(overview),
    )


def is_demo(workspace: Workspace) -> bool:
    from console.config.demo_marker import is_demo_workspace

    root = getattr(workspace.config, "root", None)
    return root is not None and is_demo_workspace(root)
