"""The Textual app: themes, global keys, the command palette, and the workspace life cycle.

Imports stay light here: the first frame (the overview skeleton) renders before the workspace
is opened; backends are built in a worker thread afterwards and closed when the app exits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from console.domain.text import escape_controls
from console.logs import redact
from console.tui import wiring
from console.tui.actions import ReleaseActions, is_mutating
from console.tui.clock import Clock, clock_from_env
from console.tui.firstframe import keep_first_frame, over_shown_frame
from console.tui.gctune import resume_gc
from console.tui.goto import Navigator
from console.tui.screens.base import ConsoleScreen
from console.tui.themes import DEFAULT_THEME, SEMANTIC_DEFAULTS, load_themes
from console.tui.typeahead import TypeAhead

if TYPE_CHECKING:
    from pathlib import Path

    from console.config import ConsoleConfig
    from console.config.locate import Located
    from console.identity import IdentityProvider
    from console.services.release import ReleaseService
    from console.services.workspace import Workspace
    from console.tui.lastframe import FrameSlot

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        label: str = "",
        cache_key: str | None = None,
        peeked_theme: str | None = None,
        workspace: Workspace | None = None,
        theme: str | None = None,
        read_only: bool = False,
        model: str | None = None,
        version: str | None = None,
        clock: Clock | None = None,
        refresh_seconds: float | None = None,
        theme_dirs: list[Path] | None = None,
        release: ReleaseService | None = None,
        identity: IdentityProvider | None = None,
        first_frame: FrameSlot | None = None,
    ) -> None:
        """Either ``config`` or ``load_config`` (validated in a worker after the first frame,
        which then shows ``label`` as the workspace's name and, with ``cache_key``, the model
        list of the last session). ``release`` (a ReleaseService) and ``identity`` (who acts)
        may be injected, e.g. by tests; by default the release service acts as the OS user."""
        super().__init__()
        self.first_frame = first_frame
        if first_frame is not None and first_frame.shown is not None:
            self.driver_class = over_shown_frame(self.driver_class, first_frame)
        if config is None and load_config is None:
            raise TypeError("ConsoleApp needs a config or a way to load one")
        self.config: Any = config  # ConsoleConfig once loaded (None only before the first frame)
        self._load_config = load_config
        self.workspace = workspace
        self._owns_workspace = workspace is None
        self.read_only = read_only
        self.actions = ReleaseActions(self)
        self.nav = Navigator(self, model, version)
        self.clock: Clock = clock or clock_from_env()
        self._refresh_override = refresh_seconds
        self.refresh_seconds = 0.0
        self.label = label
        self.cache_key = cache_key
        self.listing: Any = None  # (models, saved_at) of the last session, see startcache
        if cache_key is not None:
            from console.tui.startcache import read_listing

            self.listing = read_listing(cache_key)
        if config is not None:
            self._use_config(config)
        self.services: wiring.Services | None = None
        self._release = release
        self.identity: IdentityProvider | None = identity or getattr(release, "identity", None)
        self.demo_workspace = False  # a demo's colleagues may approve (console.demo.persona)
        self.ready = asyncio.Event()
        self.catalog = wiring.Catalog()
        from console.tui.watching import Watches

        self.watches = Watches(self)  # a version after a change, for the SLO window
        self.theme_specs, self.theme_problems = load_themes(theme_dirs)
        for spec in self.theme_specs.values():
            self.register_theme(spec.to_textual())
        self._asked_theme = theme
        wanted = theme or (config.ui.theme if config is not None else peeked_theme)
        self.theme = self._pick_theme(wanted or DEFAULT_THEME)

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

    def _use_config(self, config: ConsoleConfig) -> None:
        self.config = config
        self.label = config.workspace.name or config.root.name
        self.refresh_seconds = (
            config.ui.refresh_seconds if self._refresh_override is None else self._refresh_override
        )
        self.actions.roles_changed()

    def _theme_from_config(self) -> None:
        """The first frame used a quick reading of the file; the validated config decides."""
        wanted = self.config.ui.theme
        if self._asked_theme is None and wanted and wanted != self.theme:
            self.theme = self._pick_theme(wanted)

    # -- themes ------------------------------------------------------------------------------

    def _pick_theme(self, wanted: str) -> str:
        if wanted in self.available_themes:
            return wanted
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.theme_specs else "textual-dark"
        self.theme_problems.append(
            f"unknown theme {wanted!r}; using {fallback} "
            f"(available: {', '.join(sorted(self.theme_specs)) or 'none found'})"
        )
        return fallback

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(SEMANTIC_DEFAULTS)

    def switch_theme(self, name: str) -> bool:
        """Use theme ``name``; say so (or why not) in a notification."""
        if name not in self.available_themes:
            self.notify(
                f"No theme named {name!r}; try {', '.join(sorted(self.theme_specs))}",
                severity="warning",
            )
            return False
        self.theme = name
        self.notify(f"Theme: {name}", timeout=2)
        return True

    # -- life cycle --------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        from console.tui.screens.overview import OverviewScreen

        return OverviewScreen()

    def on_mount(self) -> None:
        for problem in self.theme_problems:
            self.notify(problem, title="Themes", severity="warning", timeout=8)
        # The first frame (the overview skeleton) goes out before the config is validated and
        # before any backend is built.
        if self.first_frame is not None and not self.theme_problems:
            self.call_after_refresh(keep_first_frame, self, self.first_frame)
        self.call_after_refresh(resume_gc)
        self.call_after_refresh(self._open_workspace)
        if self.config is not None:
            self.nav.open_initial()

    async def _validate_config(self) -> bool:
        """Validate the config off the UI thread; on a problem exit saying what to fix."""
        assert self._load_config is not None
        config = await self._in_thread("read the config", self._load_config)
        if (
            config is None or self._has_quit()
        ):  # quit (q, Ctrl+C) while the config loaded: nothing to show it on
            return False
        self._use_config(config)
        self._theme_from_config()
        self.refresh_bindings()
        if isinstance(self.screen, ConsoleScreen):
            self.screen.config_loaded()
        self.nav.open_initial()
        return True

    async def _in_thread(self, what: str, call: Callable[[], T]) -> T | None:
        """``call()`` off the UI thread; on a problem (None) exit saying what to fix (2, a
        config error) or what failed (1; never a traceback on screen, details in the log)."""
        from console.config import ConfigError

        try:
            return await asyncio.to_thread(call)
        except ConfigError as exc:
            self.exit(None, return_code=2, message=str(exc))
        except Exception as exc:
            log.exception("could not %s", what)
            self.exit(None, return_code=1, message=f"Could not {what}: {redact(str(exc))}")
        return None

    def _has_quit(self) -> bool:
        """The app quit (its screens are gone, or going) while a worker waited on a thread."""
        return not self.is_running or not self.screen_stack

    @work(group="workspace", exclusive=True)
    async def _open_workspace(self) -> None:
        """Validate the config and build the backends off the UI thread, then the services
        the screens use."""
        if self.config is None and not await self._validate_config():
            return
        if self.workspace is None:
            from console.services.workspace import open_workspace

            opening = functools.partial(open_workspace, self.config)
            self.workspace = await self._in_thread("open the workspace", opening)
            if self.workspace is None:
                return
        self.services = await asyncio.to_thread(
            functools.partial(
                wiring.build_services,
                self.workspace,
                self.clock,
                release=self._release,
                identity=self.identity,
                read_only=self.read_only,
            )
        )
        self.demo_workspace = await asyncio.to_thread(wiring.is_demo, self.workspace)
        if self._has_quit():
            return
        self.ready.set()
        self.actions.reconcile()

    async def on_unmount(self) -> None:
        if self.workspace is not None and self._owns_workspace:
            try:
                await asyncio.wait_for(self.workspace.aclose(), 5)
            except Exception:  # closing must not hide how the session ended
                log.exception("closing the workspace failed")

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
    from console.config.locate import peek_theme

    def load() -> ConsoleConfig:
        from console.config import load_located

        return load_located(located)

    where = located.where
    label = where.name if located.path is None else where.parent.name
    app = ConsoleApp(
        load_config=load,
        label=label,
        cache_key=str(where),
        theme=theme,
        peeked_theme=frame.key["peeked_theme"] if frame is not None else peek_theme(located),
        read_only=read_only,
        model=model,
        version=version,
        first_frame=frame,
    )
    app.run()
    return app.return_code or 0
