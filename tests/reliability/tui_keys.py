"""Terminal input for the TUI tests: keys and sequences as bytes through Textual's own xterm
parser into the driver, resize storms, and an app over the fake backends of tests/tui."""

from __future__ import annotations

import itertools
import string
from typing import Any

from textual import events
from textual._xterm_parser import XTermParser
from textual.geometry import Size

from console.domain import Actor
from console.services.release import ReleaseService
from console.tui.app import ConsoleApp
from console.tui.screens.model import WIDE, ModelScreen

from .tui_rig import load_tui_fakes, settle, until

fakes = load_tui_fakes()
CHURN = "churn-predictor"

BURST = [(40, 12), (200, 60), (80, 24), (41, 13), (160, 40), (59, 17), (220, 70), (45, 12)]
"""A terminal dragged by its corner: sizes arrive faster than frames."""
DRAWN = [(40, 12), (200, 60), (80, 24)]
"""Then each of these is drawn and looked at; the last one is where the test goes on."""

# What a person (or a confused terminal) may send that the console does not bind.
FUNCTION_KEYS = ["\x1bOP", "\x1bOQ", "\x1bOR", "\x1bOS", *(f"\x1b[{n}~" for n in
                 (15, 17, 18, 19, 20, 21, 23, 24, 25, 26, 28, 29, 31, 32, 33, 34))]  # fmt: skip
ODD_SEQUENCES = [
    "\x1b[1;5P", "\x1b[1;6Q", "\x1b[15;7~", "\x1b[99~", "\x1b[1;9Z", "\x1b[3;3~",  # mods
    "\x1b[I", "\x1b[O",  # focus in / out
    "\x1b[?1;2c", "\x1b[>0;276;0c", "\x1b[8;24;80t",  # terminal answers nobody asked for
    "\x1b]11;rgb:0000/0000/0000\x1b\\", "\x1b]0;title\x07", "\x1bP1$r0m\x1b\\",  # OSC, DCS
    "\x1b[<35;10;5M", "\x1b[<35;11;6M",  # the mouse moving (never a click)
    "\x1bx", "\x1bé", "\x1b\x1b[A", "\x1b[", "\x1bO", "\x1b[1;",  # alt, broken, cut short
    "\x1b[27;5;106~", "\x1b[106;5u", "\x1b[57399u",  # kitty / modifyOtherKeys encodings
]  # fmt: skip
CONTROL = "".join(chr(c) for c in range(32) if chr(c) not in "\t\r\n\x1b")
UNICODE = "éß€✓🙂日本語\u200b\u202e"
RAW = "".join([string.printable, UNICODE, CONTROL, *FUNCTION_KEYS, *ODD_SEQUENCES])


def parse(data: str) -> list[Any]:
    """The events Textual's own parser makes of ``data`` (what the real driver would post)."""
    parser = XTermParser()
    out = [*parser.feed(data), *parser.feed("")]
    return [*out, *parser.tick()]


def bound(app: Any) -> set[str]:
    """Every key that does something on the current screen (its own, the focused widget's),
    and the app's own keys (the palette's ctrl+p answers over a dialog too)."""
    keys = set(app.screen.active_bindings) | set(app._bindings.key_to_bindings)
    return keys | {app.COMMAND_PALETTE_BINDING}


def unbound(app: Any, evs: list[Any]) -> list[Any]:
    """``evs`` less every key press that is bound here (those are not "unknown keys")."""
    keys = bound(app)
    out = []
    for e in evs:
        if isinstance(e, events.Key) and ({e.key, *e.aliases} & keys or e.key in SPECIAL):
            continue
        out.append(e)
    return out


SPECIAL = {"tab", "shift+tab", "enter", "ctrl+m", "ctrl+j", "escape", "ctrl+q", "ctrl+c"}
"""Handled by Textual itself on any screen (focus, submit, close, quit): never "unknown"."""


async def send(pilot: Any, evs: list[Any]) -> None:
    """Hand ``evs`` to the driver as a terminal would, all at once; then let the app drain."""
    driver = pilot.app._driver
    for e in evs:
        driver.process_message(e)
    await pilot.pause()
    await pilot.pause()


class _NoAnchor:
    """Tests never move an audit anchor ref."""

    async def prove(self) -> None:
        return None

    async def advance(self) -> None:
        return None


_no_anchor = _NoAnchor()


def make_app(world: Any, *, user: str = "ops", **kw: Any) -> ConsoleApp:
    """The console over ``world``'s fakes, acting as ``user`` (ops: a release manager who wrote
    nothing); no refresh timer."""
    ws, _ = fakes.make_workspace(world)
    release = release_service(world, user)
    app: ConsoleApp = fakes.console_app(
        ws.config,
        workspace=ws,
        clock=fakes.MutableClock(),
        refresh_seconds=0,
        release=release,
        **kw,
    )
    return app


def release_service(world: Any, user: str) -> ReleaseService:
    """The real release service over ``world``'s fakes, acting as ``user``; request ids are
    unique per world (req-0001, req-0002, ...), whoever asks."""
    ws, _ = fakes.make_workspace(world)
    if not hasattr(world, "ids"):
        numbers = itertools.count(1)
        world.ids = lambda: f"req-{next(numbers):04d}"
    return ReleaseService(ws, identity=lambda: Actor(user=user), clock=fakes.MutableClock(),
                          new_id=world.ids, anchor=_no_anchor)  # fmt: skip


def state(world: Any) -> tuple[Any, ...]:
    """What an unintended action would change: the audit log, the stages."""
    stages = tuple((m.name, m.prod, m.staging) for m in world.models.values())
    return len(world.audit_log), tuple(world.assigned), stages


def drawn(app: Any) -> str:
    """The screen as text, drawn now (a crash while drawing would raise here)."""
    return app.export_screenshot()


async def storm(pilot: Any, screen: Any, look: str) -> None:
    """A burst of resizes, then each DRAWN size in turn: the same screen is up and laid out
    at every size, and draws ``look`` (its own words) at the last."""
    app = pilot.app
    driver = app._driver
    for w, h in BURST:
        driver._size = Size(w, h)
        driver.process_message(events.Resize(Size(w, h), Size(w, h)))
    await pilot.pause()
    for w, h in DRAWN:
        await pilot.resize_terminal(w, h)
        await until(pilot, lambda w=w, h=h: laid_out(screen, w, h), f"the layout at {w}x{h}")
        assert app.is_running and app.screen is screen, (w, h, app.screen, screen)
    assert look in drawn(app), f"{look!r} not drawn at {DRAWN[-1]}"


def laid_out(screen: Any, w: int, h: int) -> bool:
    """``screen`` has taken the size ``w`` x ``h`` (the model screen: with its layout)."""
    if screen.size != Size(w, h):
        return False
    if isinstance(screen, ModelScreen):
        return screen.has_class("-wide") == (w >= WIDE[0] and h >= WIDE[1])
    return True


async def odd_keys(pilot: Any, screen: Any, world: Any) -> None:
    """Every unbound key and sequence at once: nothing happens, the screen stays."""
    app = pilot.app
    before = state(world)
    evs = unbound(app, parse(RAW))
    assert len(evs) > 100
    await send(pilot, evs)
    await settle(pilot)
    assert app.is_running and app.screen is screen
    assert state(world) == before
    if hasattr(screen, "busy"):
        assert not screen.busy and not screen.done


async def walk(pilot: Any, screen: Any, world: Any, look: str) -> None:
    await storm(pilot, screen, look)
    await odd_keys(pilot, screen, world)
    drawn(pilot.app)


async def request_promotion(world: Any) -> None:
    """A request by sam for churn v1.14.0 to production, waiting for an approval."""
    svc = release_service(world, "sam")
    await svc.promote(CHURN, "v1.14.0", "production", reason="recall up", ack_schema_change=True)


async def paste(pilot: Any, text: str) -> None:
    """A bracketed paste into the focused widget, as the terminal sends it."""
    await send(pilot, parse(f"\x1b[200~{text}\x1b[201~"))
