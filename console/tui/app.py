"""The Textual app: themes, global keys, the command palette, and the workspace life cycle.

Imports stay light here: the first frame (the overview skeleton) renders before the workspace
is opened; backends are built in a worker thread afterwards and closed when the app exits.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input

from console.domain.text import escape_controls
from console.logs import redact
from console.tui.actions import ReleaseActions, is_mutating
from console.tui.clock import Clock, clock_from_env
from console.tui.screens.base import ConsoleScreen
from console.tui.themes import DEFAULT_THEME, SEMANTIC_DEFAULTS, load_themes

if TYPE_CHECKING:
    from pathlib import Path

    from console.config import ConsoleConfig
    from console.config.locate import Located
    from console.identity import IdentityProvider
    from console.services.health import HealthService
    from console.services.incidents import IncidentService
    from console.services.lineage import LineageService
    from console.services.live import LiveService
    from console.services.overview import OverviewService
    from console.services.release import ReleaseService
    from console.services.timeline import TimelineService
    from console.services.workspace import Workspace
    from console.tui.lastframe import FrameSlot

log = logging.getLogger(__name__)


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


def _build_services(
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


def _is_demo(workspace: Workspace) -> bool:
    from console.demo.build import is_demo_workspace

    root = getattr(workspace.config, "root", None)
    return root is not None and is_demo_workspace(root)


def _model_commands() -> type:
    from console.tui.commands import ModelCommands

    return ModelCommands


def _version_commands() -> type:
    from console.tui.commands import VersionCommands

    return VersionCommands


def _action_commands() -> type:
    from console.tui.commands import ActionCommands

    return ActionCommands


def _over_shown_frame(driver: type, frame: FrameSlot) -> type:
    """``driver`` (Textual's terminal driver), taking over a screen on which the last start's
    frame is shown already: the terminal settings are the user's again before Textual reads
    them, and its switch to the alternate screen (which some terminals clear) is skipped."""
    from textual.drivers.linux_driver import LinuxDriver

    if driver is not LinuxDriver:  # another driver asked for (e.g. by TEXTUAL_DRIVER)
        return driver

    class OverShownFrame(LinuxDriver):
        def start_application_mode(self) -> None:
            frame.hand_over()
            super().start_application_mode()

        def write(self, data: str) -> None:
            if not frame.skip_alt_screen(data):
                super().write(data)

    return OverShownFrame


def resume_gc() -> None:
    """After the first frame: collect garbage again if the launcher paused the collector for
    the start-up (see ``cli.open_tui``). What the start built lives as long as the app, so it is
    frozen: later full collections do not walk it again."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class ConsoleApp(App[int]):
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
    COMMANDS: ClassVar[set[Any]] = {_model_commands, _version_commands, _action_commands} | set(
        App.COMMANDS
    )

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
            self.driver_class = _over_shown_frame(self.driver_class, first_frame)
        if config is None and load_config is None:
            raise TypeError("ConsoleApp needs a config or a way to load one")
        self.config: Any = config  # ConsoleConfig once loaded (None only before the first frame)
        self._load_config = load_config
        self.workspace = workspace
        self._owns_workspace = workspace is None
        self.read_only = read_only
        self.actions = ReleaseActions(self)
        self.opening_from: Screen[Any] | None = None  # a release action reads, then opens a dialog
        self.initial_model = model
        self.initial_version = version
        self._asked_model = model  # checked against the registry's list once it arrives
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
        self.services: Services | None = None
        self._release = release
        self.identity: IdentityProvider | None = identity or getattr(release, "identity", None)
        self.demo_workspace = False  # a demo's colleagues may approve (console.demo.persona)
        self.ready = asyncio.Event()
        self.catalog = Catalog()
        from console.tui.watching import Watches

        self.watches = Watches(self)  # a version after a change, for the SLO window
        self._held: list[events.Key] = []  # keys typed ahead of a screen (see on_event)
        self._held_since = 0.0
        self.theme_specs, self.theme_problems = load_themes(theme_dirs)
        for spec in self.theme_specs.values():
            self.register_theme(spec.to_textual())
        self._asked_theme = theme
        wanted = theme or (config.ui.theme if config is not None else peeked_theme)
        self.theme = self._pick_theme(wanted or DEFAULT_THEME)

    # -- keys typed ahead ----------------------------------------------------------------------
    # Over SSH keys arrive in bursts, and people type ahead: "R" then the reason at once, "/prod",
    # ":fraud⏎". Textual runs a (non-priority) binding only after the key has bubbled up from
    # the focused widget through each parent's queue, and a pushed screen takes the focus only
    # once it is mounted; the keys behind went to the old focus meanwhile ("R" + "p95 up"
    # opened Promote's stage picker over the rollback dialog). Here a key's binding runs as the
    # app reads the key, and keys wait while a new screen is not mounted or a release action
    # has not opened its dialog yet (at most HOLD_LIMIT), in the order typed. Keys for a text
    # field go to it as before, and a key no binding takes goes on to the focused widget as
    # Textual sends it.

    HOLD_LIMIT = 0.5

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._held or not self._ready_for_keys():
                self._hold(event)
                return
            if await self._bound(event):
                return
        await super().on_event(event)

    def _ready_for_keys(self) -> bool:
        screen = self.screen
        if self.opening_from is not None:  # a release action is reading, then opens a dialog
            if screen is self.opening_from:
                return False
            self.opening_from = None
        # Once mounted, a new screen has asked for its focus (compose, or focus() in on_mount,
        # which queues it on the app before the screen counts as mounted): the held keys are
        # let go from the same queue, after it.
        return screen.is_mounted

    def _hold(self, event: events.Key) -> None:
        self._held.append(event)
        if len(self._held) == 1:
            self._held_since = time.monotonic()
            self._look_again()

    def _look_again(self) -> None:
        # A timer's callback runs in the timer's own task: the held keys are let go from the
        # app's queue instead, one message among the others, never beside a key being handled.
        self.set_timer(0.01, lambda: self.call_later(self._release_held))

    async def _release_held(self) -> None:
        while self._held:
            waited = time.monotonic() - self._held_since
            if not self._ready_for_keys() and waited < self.HOLD_LIMIT:
                self._look_again()
                return
            event = self._held.pop(0)
            self._held_since = time.monotonic()  # a held key may open a screen in turn
            if not await self._bound(event):
                await super().on_event(event)

    async def _bound(self, event: events.Key) -> bool:
        """Run ``event``'s binding now, unless a text field has the focus; True if one ran."""
        if isinstance(self.focused, Input) or self.screen.maximized is not None:
            return False  # every text field here is an Input
        self.app_focus = True
        return await self._check_bindings(event.key, priority=True) or await self._check_bindings(
            event.key
        )

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
            self.call_after_refresh(self._keep_first_frame)
        self.call_after_refresh(resume_gc)
        self.call_after_refresh(self._open_workspace)
        if self.initial_model and self.config is not None:
            self.open_model(self.initial_model, self.initial_version)

    def _keep_first_frame(self) -> None:
        """Keep the overview's first frame, as the terminal output Textual wrote for it, for
        the next start to show while Textual loads (see console.tui.lastframe)."""
        slot = self.first_frame
        screen = self.screen
        if slot is None or len(self.screen_stack) != 1:
            return
        try:
            # What App._display writes for a full repaint (Textual's own screenshots read the
            # compositor the same way).
            from textual._compositor import CompositorUpdate

            update = screen._compositor.render_update(full=True)
            if not isinstance(update, CompositorUpdate):
                return
            frame = update.render_segments(self.console)
        except Exception:  # a later Textual may render differently: no frame kept, no harm
            log.warning("could not keep the first frame", exc_info=True)
            return
        if frame:
            size = (self.size.width, self.size.height)
            self.run_worker(functools.partial(slot.save, frame, size), thread=True)

    async def _validate_config(self) -> bool:
        """Validate the config off the UI thread; on a problem exit saying what to fix."""
        from console.config.locate import ConfigError

        assert self._load_config is not None
        try:
            config = await asyncio.to_thread(self._load_config)
        except ConfigError as exc:
            self.exit(None, return_code=2, message=str(exc))
            return False
        except Exception as exc:  # never a traceback on screen; details go to the log
            log.exception("reading the config failed")
            said = redact(str(exc))
            self.exit(None, return_code=1, message=f"Could not read the config: {said}")
            return False
        if self._has_quit():  # quit (q, Ctrl+C) while the config loaded: nothing to show it on
            return False
        self._use_config(config)
        self._theme_from_config()
        self.refresh_bindings()
        if isinstance(self.screen, ConsoleScreen):
            self.screen.config_loaded()
        if self.initial_model:
            self.open_model(self.initial_model, self.initial_version)
        return True

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
            from console.config import ConfigError
            from console.services.workspace import open_workspace

            try:
                self.workspace = await asyncio.to_thread(open_workspace, self.config)
            except ConfigError as exc:
                self.exit(None, return_code=2, message=str(exc))
                return
            except Exception as exc:  # never a traceback on screen; details go to the log
                log.exception("opening the workspace failed")
                said = redact(str(exc))
                self.exit(None, return_code=1, message=f"Could not open the workspace: {said}")
                return
        self.services = await asyncio.to_thread(
            functools.partial(
                _build_services, self.workspace, self.clock, release=self._release,
                identity=self.identity, read_only=self.read_only,
            )
        )  # fmt: skip
        self.demo_workspace = await asyncio.to_thread(_is_demo, self.workspace)
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
        """Show ``name``'s screen (replacing another model's screen), optionally on ``version``."""
        from console.tui.screens.model import ModelScreen

        if self.config is None:  # the first instant: open it once the config is read
            self.initial_model, self.initial_version = name, version
            return

        current = self.screen
        if isinstance(current, ModelScreen):
            if current.model_name == name:
                if version:
                    current.select_version(version)
                return
            self.switch_screen(ModelScreen(name, version=version))
            return
        self.push_screen(ModelScreen(name, version=version))

    def go_to(self, text: str) -> None:
        """Run a `:` command: a model name, `theme NAME`, `help`, or `q`."""
        words = text.strip().split()
        if not words:
            return
        head = words[0].lower()
        if head in ("q", "quit", "exit"):
            self.exit(0)
        elif head == "theme" and len(words) > 1:
            self.switch_theme(words[1])
        elif head in ("help", "h"):
            self.action_help()
        else:
            name = " ".join(words)
            known = self.catalog.models
            found = match_model(name, known) if known else name
            if found is not None:
                self.open_model(found)
            else:
                self.notify(no_such_model(name, known), severity="warning")

    def models_listed(self) -> None:
        """The registry's list of models arrived (the catalog holds it). A model asked for at
        start (`cd4ml-console open NAME`) whose screen opened before the list was known is
        checked now: a different spelling of one model (case, a unique prefix) opens that
        model; a name of none goes back to the overview, saying so."""
        from console.tui.screens.model import ModelScreen

        asked, self._asked_model = self._asked_model, None
        known = self.catalog.models
        if asked is None or asked in known:
            return
        screen = self.screen
        if not isinstance(screen, ModelScreen) or screen.model_name != asked:
            return  # the user has moved on
        found = match_model(asked, known)
        if found is not None:
            self.switch_screen(ModelScreen(found, version=self.initial_version))
        else:
            self.pop_screen()
            self.notify(no_such_model(asked, known), severity="warning", timeout=10)

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
                self.go_to(text)

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


def match_model(name: str, known: Iterable[str]) -> str | None:
    """The model ``name`` means: itself, the one that differs only in case, or the only one
    it is a prefix of (case-insensitive); None when it means none or several."""
    names = list(known)
    if name in names:
        return name
    folded = {k.lower(): k for k in names}
    if name.lower() in folded:
        return folded[name.lower()]
    prefixed = [k for k in names if k.lower().startswith(name.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def no_such_model(name: str, known: Iterable[str]) -> str:
    """What to say when ``name`` matches no model: with the nearest names, if any (a whole
    name close to it, else one with a word close to it: "frod" → fraud-detector)."""
    import re
    from difflib import get_close_matches

    names = list(known)
    close = get_close_matches(name, names, n=3)
    if not close:
        words: dict[str, list[str]] = {}
        for k in names:
            for word in re.split(r"[-_.:/ ]+", k.lower()):
                words.setdefault(word, []).append(k)
        for word in get_close_matches(name.lower(), list(words), n=3):
            close.extend(k for k in words[word] if k not in close)
        close = close[:3]
    hint = f" — did you mean {', '.join(close)}?" if close else ""
    return f"No model named {name!r}{hint}"


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
        load_config=load, label=label, cache_key=str(where), theme=theme,
        peeked_theme=frame.key["peeked_theme"] if frame is not None else peek_theme(located),
        read_only=read_only, model=model, version=version, first_frame=frame,
    )  # fmt: skip
    app.run()
    return app.return_code or 0
