"""The Textual app: themes, global keys, the command palette, and the workspace life cycle.

Imports stay light here: the first frame (the overview skeleton) renders before the workspace
is opened; backends are built in a worker thread afterwards and closed when the app exits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from console.domain.text import escape_controls
from console.tui import opening, wiring
from console.tui.actions import ReleaseActions, is_mutating
from console.tui.clock import Clock, clock_from_env
from console.tui.firstframe import keep_first_frame, over_shown_frame
from console.tui.gctune import resume_gc
from console.tui.goto import Navigator
from console.tui.launch import Launch
from console.tui.screens.base import ConsoleScreen
from console.tui.themes import DEFAULT_THEME, SEMANTIC_DEFAULTS
from console.tui.theming import Theming
from console.tui.typeahead import TypeAhead

if TYPE_CHECKING:
    from console.config import ConsoleConfig
    from console.config.locate import Located
    from console.identity import IdentityProvider
    from console.services.release import ReleaseService
    from console.services.workspace import Workspace
    from console.tui.lastframe import FrameSlot
    from console.tui.startcache import Listed
    from console.tui.themes import ThemeSpec


def _commands(name: str) -> type:
    """A palette provider of console.tui.commands, imported when the palette first opens."""
    from console.tui import commands

    return cast(type, getattr(commands, name))


class ConsoleApp(TypeAhead):
    """cd4ml-console: the models overview, one screen per model, help, palette and themes."""

    TITLE = "cd4ml-console"
    CSS_PATH = "app.tcss"
    COMMAND_PALETTE_DISPLAY = "^p"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Quit the console"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "goto", "Go to", key_display=":"),
        Binding("r", "refresh", "Refresh"),
        Binding("ctrl+t", "pick_theme", "Theme", show=False),
        Binding("A", "audit", "Audit log", show=False),
    ]
    COMMANDS: ClassVar[set[Any]] = {
        functools.partial(_commands, name)
        for name in ("ModelCommands", "VersionCommands", "ActionCommands")
    } | set(App.COMMANDS)

    def __init__(
        self,
        config: ConsoleConfig | None = None,
        *,
        load_config: Callable[[], ConsoleConfig] | None = None,
        launch: Launch | None = None,
        workspace: Workspace | None = None,
        clock: Clock | None = None,
        refresh_seconds: float | None = None,
        release: ReleaseService | None = None,
        identity: IdentityProvider | None = None,
    ) -> None:
        """Either ``config`` or ``load_config`` (validated in a worker after the first frame,
        which then shows ``launch.label`` as the workspace's name and, with
        ``launch.cache_key``, the model list of the last session). ``workspace``, ``release``
        (a ReleaseService) and ``identity`` (who acts) may be injected, e.g. by tests; by
        default the release service acts as the OS user."""
        super().__init__()
        launch = launch or Launch()
        self.launch = launch
        self.first_frame = launch.first_frame
        if self.first_frame is not None and self.first_frame.shown is not None:
            self.driver_class = over_shown_frame(self.driver_class, self.first_frame)
        if config is None and load_config is None:
            raise TypeError("ConsoleApp needs a config or a way to load one")
        self.config = config  # None only before the first frame, see loaded_config
        self.load_config = load_config
        self.workspace = workspace
        self.owns_workspace = workspace is None
        self.read_only = launch.read_only
        self.actions = ReleaseActions(self)
        self.nav = Navigator(self, launch.model, launch.version)
        self.clock: Clock = clock or clock_from_env()
        self._refresh_override = refresh_seconds
        self.refresh_seconds = 0.0
        self.label = launch.label
        self.cache_key = launch.cache_key
        self.listing: tuple[list[Listed], float] | None = None  # the last session's models
        if self.cache_key is not None:
            from console.tui.startcache import read_listing

            self.listing = read_listing(self.cache_key)
        if config is not None:
            self.use_config(config)
        self.services: wiring.Services | None = None
        self.injected_release = release
        self.identity: IdentityProvider | None = identity or getattr(release, "identity", None)
        self.demo_workspace = False  # a demo's colleagues may approve (console.demo.persona)
        self.ready = asyncio.Event()
        self.catalog = wiring.Catalog()
        from console.tui.watching import Watches

        self.watches = Watches(self)  # a version after a change, for the SLO window
        self.theming = Theming(self, launch.theme)
        wanted = launch.theme or (config.ui.theme if config is not None else launch.peeked_theme)
        self.theme = self.theming.pick(wanted or DEFAULT_THEME)

    def _fatal_error(self) -> None:
        """Textual's private crash hook: report without local variables (see tui/crash.py)."""
        from console.tui.crash import report_crash

        report_crash(self)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification as plain text: messages quote backends and the audit log, so a
        ``[`` is never read as markup and a control character is shown escaped."""
        super().notify(
            escape_controls(message, lines=True),
            title=escape_controls(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def use_config(self, config: ConsoleConfig) -> None:
        self.config = config
        self.label = config.workspace.name or config.root.name
        self.refresh_seconds = (
            config.ui.refresh_seconds if self._refresh_override is None else self._refresh_override
        )
        self.actions.roles_changed()

    @property
    def loaded_config(self) -> ConsoleConfig:
        """The validated config; screens and actions that read it run once it is loaded."""
        assert self.config is not None, "the config is not loaded yet"
        return self.config

    # -- themes (console.tui.theming) --------------------------------------------------------

    @property
    def theme_specs(self) -> dict[str, ThemeSpec]:
        return self.theming.specs

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(SEMANTIC_DEFAULTS)

    def switch_theme(self, name: str) -> bool:
        """Use theme ``name``; say so (or why not) in a notification."""
        return self.theming.switch(name)

    # -- life cycle (console.tui.opening) ----------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        from console.tui.screens.overview import OverviewScreen

        return OverviewScreen()

    def on_mount(self) -> None:
        for problem in self.theming.problems:
            self.notify(problem, title="Themes", severity="warning", timeout=8)
        # The first frame (the overview skeleton) goes out before the config is validated and
        # before any backend is built.
        if self.first_frame is not None and not self.theming.problems:
            self.call_after_refresh(keep_first_frame, self, self.first_frame)
        self.call_after_refresh(resume_gc)
        self.call_after_refresh(self._open_workspace)
        if self.config is not None:
            self.nav.open_initial()

    @work(group="workspace", exclusive=True)
    async def _open_workspace(self) -> None:
        await opening.open_workspace(self)

    async def on_unmount(self) -> None:
        await opening.close_workspace(self)

    # -- navigation --------------------------------------------------------------------------

    def open_model(self, name: str, version: str | None = None) -> None:
        """Show ``name``'s screen (see console.tui.goto)."""
        self.nav.open_model(name, version)

    # -- actions -----------------------------------------------------------------------------

    @property
    def release(self) -> ReleaseService:
        """The release service once the workspace is open."""
        assert self.services is not None, "the workspace is not open yet"
        return self.services.release

    def release_action(self, action_id: str) -> None:
        """The one entry point of the release actions (see console.tui.actions)."""
        self.actions.run(action_id)

    def action_compare(self) -> None:
        self.release_action("compare")

    def action_approve(self) -> None:
        self.release_action("approve")

    def action_promote(self) -> None:
        self.release_action("promote")

    def action_rollback(self) -> None:
        self.release_action("rollback")

    def action_audit(self) -> None:
        self.release_action("audit")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Changing actions are hidden from the footer when this session may not change anything.
        return not (is_mutating(action) and self.actions.off())

    def action_help(self) -> None:
        from console.tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_goto(self) -> None:
        """The prompt is on the stack before the next key is routed (see ``on_event``):
        ":fraud⏎" typed fast goes to the prompt, not to the screen's `r` and `a`."""
        from console.tui.screens.prompt import GotoScreen

        def done(text: str | None) -> None:
            if text:
                self.nav.go_to(text)

        self.push_screen(GotoScreen(sorted(self.catalog.models)), done)

    def action_refresh(self) -> None:
        if isinstance(self.screen, ConsoleScreen):
            self.screen.refresh_data()

    def action_pick_theme(self) -> None:
        from textual.command import CommandPalette

        from console.tui.commands import ThemeCommands

        self.push_screen(CommandPalette(providers=[ThemeCommands], placeholder="Theme…"))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title not in ("Theme", "Keys"):
                yield command


def run_tui(
    located: Located,
    *,
    theme: str | None = None,
    read_only: bool = False,
    model: str | None = None,
    version: str | None = None,
    frame: FrameSlot | None = None,
) -> int:
    """Open the console on the workspace whose config was ``located``; returns the exit code.
    The config is validated after the first frame (a problem exits 2 saying what to fix).
    ``frame``: where the first frame is kept for the next start (and whether this start
    showed the last one, see console.tui.lastframe)."""

    def load() -> ConsoleConfig:
        from console.config import load_located

        return load_located(located)

    launch = Launch.of(
        located, theme=theme, read_only=read_only, model=model, version=version, frame=frame
    )
    app = ConsoleApp(load_config=load, launch=launch)
    app.run()
    return app.return_code or 0
