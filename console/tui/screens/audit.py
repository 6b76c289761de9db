"""`A`: the console's audit log, newest first, with filters and chain verification.

Reading and verifying go through console.services.release.audit_view. `/` filters as you type:
plain words match any field, `model:NAME`, `action:NAME` and `actor:NAME` match one field;
`m`, `t` and `u` add (or drop) the highlighted event's model, action or actor. `v` verifies
the hash chain and the git anchor and says: ok, or the first bad record.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from console.domain.text import escape_controls
from console.tui import format as fmt
from console.tui.headers import title_line
from console.tui.palette import Palette, palette_of
from console.tui.planview import error_text
from console.tui.screens.base import ConsoleScreen
from console.tui.widgets.bars import FilterBar, TitleBar, follow_theme, tolerate_teardown
from console.tui.widgets.columns import KEEP, ranked
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.vtable import Cell, Column, VirtualTable

if TYPE_CHECKING:
    from console.domain import AuditEvent
    from console.services.release.audit_view import AuditCheck

log = logging.getLogger(__name__)
LIMIT = 5000
DASH = "\u2013"
FIELDS = ("model", "action", "actor")
GOOD = ("ok", "executed", "approved", "pending", "requested", "cancelled", "overridden")
BAD = ("refused", "failed", "conflict", "unknown", "rejected")

# How long each column stays as the terminal narrows (see console.tui.rows): at 80 columns
# who did what to which model, when, how it ended and why; version, stage, before→after and
# the SSH client come back with width, or with `>`, and the bar below shows the whole event.
AUDIT_PRIORITY: dict[str, int] = {
    "seq": KEEP,
    "action": KEEP,
    "model": KEEP,
    "result": 95,
    "at": 90,
    "actor": 88,
    "reason": 80,
    "version": 60,
    "stage": 58,
    "change": 46,
    "ssh": 30,
}

AUDIT_COLUMNS = ranked(
    (
        Column("seq", "SEQ", 3, align="right"),  # widened to the largest seq on screen
        Column("at", "TIME UTC", 11),
        Column("actor", "ACTOR", 8, min_width=5, max_width=14, flex=True),
        Column("action", "ACTION", 15),  # "rollback intent" whole: cut, intents read the same
        Column("model", "MODEL", 17, min_width=14, max_width=24, flex=True),
        Column("version", "VERSION", 8),
        Column("stage", "STAGE", 10, min_width=7),
        Column("change", "BEFORE→AFTER", 15, min_width=9),
        Column("result", "RESULT", 8),  # "cancelled" loses a letter, "executed" none
        Column("reason", "REASON", 24, min_width=10, flex=True),
        Column("ssh", "SSH CLIENT", 15, min_width=9),
    ),
    AUDIT_PRIORITY,
)
PERSONA = "demo_persona_of"  # identity detail of an event a demo persona wrote


def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """``model:x action:y actor:z words`` → ({field: value}, [words]), lower-cased."""
    fields: dict[str, str] = {}
    words: list[str] = []
    for token in text.lower().split():
        name, sep, value = token.partition(":")
        if sep and name in FIELDS and value:
            fields[name] = value
        else:
            words.append(token)
    return fields, words


def action_of(e: AuditEvent) -> str:
    """The action as the log names it: ``intent(promote)`` (what `action:` filters match)."""
    op = e.details.get("op") if isinstance(e.details, dict) else None
    return f"{e.action}({op})" if op else e.action


def action_words(e: AuditEvent) -> str:
    """The action as the table shows it, the operation first: ``promote intent``, and an
    outcome as the operation itself (its RESULT says how it ended: ``promote executed``)."""
    op = e.details.get("op") if isinstance(e.details, dict) else None
    if not op:
        return str(e.action)
    return f"{op} intent" if e.action == "intent" else str(op)


def identity_of(e: AuditEvent) -> dict[str, Any]:
    who = e.details.get("identity") if isinstance(e.details, dict) else None
    return who if isinstance(who, dict) else {}


def actor_words(e: AuditEvent) -> str:
    """The actor, marked when a demo persona acted (a demo colleague, never a real person)."""
    return f"{e.actor}·demo" if identity_of(e).get(PERSONA) else e.actor


def matches(e: AuditEvent, fields: dict[str, str], words: Sequence[str]) -> bool:
    """Does event ``e`` pass the filter: every field exactly, every word somewhere."""
    for name, value in fields.items():
        have = e.action if name == "action" else getattr(e, name)
        if str(have).lower() != value and not (name == "action" and action_of(e) == value):
            return False
    if not words:
        return True
    hay = " ".join(
        str(x)
        for x in (
            e.seq,
            e.actor,
            action_of(e),
            action_words(e),
            e.model,
            e.version,
            e.stage,
            e.before,
            e.after,
            e.result,
            e.request_id,
            e.reason,
            identity_of(e).get("ssh_client") or "",
        )
    ).lower()
    return all(w in hay for w in words)


def toggle_token(text: str, name: str, value: str) -> str:
    """Add ``name:value`` to the filter text, or drop it when that exact filter is there."""
    value = value.lower()
    tokens = text.split()
    token = f"{name}:{value}"
    if token in [t.lower() for t in tokens]:
        return " ".join(t for t in tokens if t.lower() != token)
    kept = [t for t in tokens if not t.lower().startswith(f"{name}:")]
    return " ".join([*kept, token])


@dataclass(frozen=True)
class RequestEnd:
    """How a request ended so far, for its rows: its state, the event that closed it, and
    its reason (shown on the rows that executed it too)."""

    state: str
    seq: int | None
    reason: str


def request_ends(events: Iterable[AuditEvent]) -> dict[str, RequestEnd]:
    """Each request's state as its events say (folded as the release service does)."""
    from console.services.release.request_fold import fold_requests

    return {
        rid: RequestEnd(
            view.state.value, view.closed_by.seq if view.closed_by else None, view.request.reason
        )
        for rid, view in fold_requests(events).items()
    }


def _result_style(result: str, pal: Palette) -> Style:
    return pal.ok if result in GOOD else pal.err if result in BAD else pal.muted


def event_cells(
    e: AuditEvent, pal: Palette, *, bad_seq: int | None, end: RequestEnd | None = None
) -> dict[str, Cell]:
    """One row. A request's row shows the state the request reached (executed, rejected, …),
    not only the "pending" it was written with; the rows that executed it show its reason."""
    seq: Cell = (str(e.seq), pal.muted)
    if bad_seq is not None and e.seq >= bad_seq:
        seq = (f"✗ {e.seq}", pal.err)
    change = f"{e.before or DASH}→{e.after or DASH}" if (e.before or e.after) else ""
    result = e.result
    if end is not None and e.action == "request" and end.state != e.result:
        result = end.state
    reason = e.reason
    if end is not None and e.action in ("intent", "outcome") and end.reason:
        reason = end.reason
    return {
        "seq": seq,
        "at": (e.at.strftime("%m-%d %H:%M"), pal.muted),
        "actor": actor_words(e),
        "action": (action_words(e), pal.bold),
        "model": e.model,
        "version": e.version,
        "stage": e.stage,
        "change": change,
        "result": (result, _result_style(result, pal)),
        "reason": (reason, pal.muted),
        "ssh": (str(identity_of(e).get("ssh_client") or ""), pal.muted),
    }


def who_text(e: AuditEvent) -> str:
    """Who wrote the event and from where, as far as the console knew."""
    who = identity_of(e)
    text = e.actor
    if who.get(PERSONA):
        text += f" (a demo persona, played by {who[PERSONA]})"
    if who.get("sudo_user"):
        text += f" (sudo by {who['sudo_user']})"
    if who.get("ssh_client"):
        text += f" from {who['ssh_client']} (ssh)"
    elif who:
        text += " (local, no SSH)"
    return text


def event_detail(e: AuditEvent, pal: Palette, end: RequestEnd | None = None) -> Text:
    """The highlighted event in full; a control character a record holds is shown escaped."""
    x = escape_controls
    text = Text(no_wrap=False)
    text.append(f"seq {e.seq} ", style=pal.heading)
    text.append(f"{e.at:%Y-%m-%d %H:%M:%S} UTC · {x(who_text(e))}", style=pal.muted)
    text.append(f" · {x(action_of(e))} ", style=pal.bold)
    text.append(x(" ".join(part for part in (e.model, e.version, e.stage) if part)))
    if e.before or e.after:
        text.append(x(f" {e.before or DASH} → {e.after or DASH}"))
    text.append(x(f" · {e.result}" + (f" · {e.request_id}" if e.request_id else "")))
    if end is not None and e.request_id and end.state != e.result:
        closed = f" (seq {end.seq})" if end.seq is not None else ""
        text.append(x(f" · request now {end.state}{closed}"), style=_result_style(end.state, pal))
    why = end.reason if end is not None and e.action in ("intent", "outcome") else ""
    if why:  # an outcome's own text repeats the move; why it was made matters more
        text.append(f"\nreason (the request's): {x(why)}")
    elif e.reason:
        text.append(f"\nreason: {x(e.reason)}")
    if e.hash:
        text.append(f"\nhash {e.hash[:16]} · prev {e.prev_hash[:16] or '(first)'}", style=pal.muted)
    return text


def verify_text(check: AuditCheck, pal: Palette) -> Text:
    """ok (records, head, anchored) or the first bad seq and why."""
    r = check.result
    text = Text()
    if r.ok:
        text.append("✓ chain verified", style=pal.ok)
        head = f"head {r.head_hash[:16]}" if r.head_hash else "empty"
        text.append(f": {fmt.plural(r.count, 'record')}, {head}")
        if r.note:
            anchored = r.unanchored_since is None and r.anchor is not None
            text.append(f"; {r.note}", style=pal.ok if anchored else pal.warn)
    else:
        problem = r.problem.value.replace("_", " ") if r.problem else "bad record"
        text.append(f"✗ verification FAILED at seq {r.first_bad_seq} ({problem})", style=pal.err)
        text.append(f": {escape_controls(r.reason)}")
    if check.anchor_note:
        text.append(f"\n⚠ {escape_controls(check.anchor_note)}", style=pal.warn)
    return text


class AuditTable(VirtualTable):
    """The audit events, newest first; Enter opens the event's model."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Open the event's model", show=False),
    ]
    help_group = "audit table"


class AuditScreen(ConsoleScreen):
    """Every console audit event: seq, time, actor, action, model, version, stage, change,
    result, reason; filters; verification."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("v", "verify", "Verify chain"),
        Binding("m", "filter_by('model')", "Only this model"),
        Binding("t", "filter_by('action')", "Only this action"),
        Binding("u", "filter_by('actor')", "Only this actor"),
    ]
    DEFAULT_CSS = """
    AuditScreen { layout: vertical; background: $background; }
    AuditScreen #events { height: 1fr; }
    AuditScreen #verify { height: auto; max-height: 3; padding: 0 1; background: $surface; }
    AuditScreen #detail {
        height: auto; max-height: 5; padding: 0 1; background: $panel;
        border-top: solid $primary 30%;
    }
    """
    help_title = "Audit log"

    def __init__(self, *, model: str | None = None) -> None:
        super().__init__()
        self.scope = model
        self.events: dict[int, AuditEvent] = {}
        self.order: list[int] = []  # newest first
        self.total = 0
        self.filter_text = f"model:{model}" if model else ""
        self.check: AuditCheck | None = None
        self.bad_seq: int | None = None
        self.problem = ""
        self.ends: dict[str, RequestEnd] = {}  # request id -> how it ended so far

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        yield AuditTable(AUDIT_COLUMNS, self._cells, id="events", empty_text="reading the log…")
        yield Static("", id="verify")
        yield Static("", id="detail")
        yield FilterBar("filter: words, model:NAME, action:NAME, actor:NAME", id="filter")
        yield KeyBar()

    @property
    def table(self) -> AuditTable:
        return self.query_one("#events", AuditTable)

    def on_mount(self) -> None:
        self.query_one(FilterBar).value = self.filter_text
        self._repaint()
        self.table.focus()
        self.load()
        follow_theme(self, self._repaint)

    def _repaint(self) -> None:
        """Every line drawn with the palette (after a theme change, or the first time)."""
        pal = palette_of(self.app)
        status = self.query_one("#verify", Static)
        if self.check is not None:
            status.update(verify_text(self.check, pal))
        else:
            status.update(Text("v verifies the hash chain and its git anchor", style=pal.muted))
        self._update_title()
        self._update_detail()

    def _cells(self, key: Hashable) -> dict[str, Cell]:
        e = self.events[int(str(key))]
        return event_cells(
            e, palette_of(self.app), bad_seq=self.bad_seq, end=self.ends.get(e.request_id)
        )

    # -- loading -----------------------------------------------------------------------------

    @work(group="audit", exclusive=True)
    @tolerate_teardown
    async def load(self) -> None:
        from console.services.release.audit_view import read_log

        app = self.console_app
        await app.ready.wait()
        try:
            got = await read_log(self.workspace, limit=LIMIT)
        except Exception as exc:  # no audit backend, or unreadable: in words
            self.problem = str(getattr(exc, "message", exc))
            self.table.empty_text = f"the audit log can not be read: {self.problem}"
            self.table.set_rows([])
            self._update_title()
            return
        self.problem = ""
        self.events = {e.seq: e for e in got.events}
        self.order = sorted(self.events, reverse=True)
        self.total = got.total
        self.ends = request_ends(got.events)
        self._fit_seq()
        self._apply_filter()

    def _fit_seq(self) -> None:
        """The SEQ column as wide as the largest seq (and a verification mark), no wider."""
        digits = len(str(max(self.order, default=0))) + (2 if self.bad_seq is not None else 0)
        table = self.table
        table.columns = [
            replace(c, width=max(3, digits)) if c.key == "seq" else c for c in table.columns
        ]
        table.restyle()
        table.on_resize()

    @work(group="verify", exclusive=True)
    @tolerate_teardown
    async def verify(self) -> None:
        from console.services.release.audit_view import check_log

        app = self.console_app
        await app.ready.wait()
        status = self.query_one("#verify", Static)
        status.update(Text("verifying every record and the anchor…", style="italic"))
        try:
            check = await check_log(self.workspace)
        except Exception as exc:
            status.update(error_text(exc, palette_of(app)))
            return
        self.check = check
        self.bad_seq = None if check.result.ok else check.result.first_bad_seq
        self._fit_seq()
        status.update(verify_text(check, palette_of(app)))
        self.table.refresh_keys()
        if self.bad_seq is not None and self.bad_seq in self.events:
            self.table.move_to(self.bad_seq)
        self._update_title()

    def refresh_data(self) -> None:
        """`r`: read the log again."""
        self.load()
        self.notify("Refreshing…", timeout=1.5)

    # -- filtering ---------------------------------------------------------------------------

    def _apply_filter(self) -> None:
        fields, words = parse_filter(self.filter_text)
        keys = [s for s in self.order if matches(self.events[s], fields, words)]
        self.table.empty_text = (
            "no event matches the filter" if self.filter_text.strip() else "the audit log is empty"
        )
        self.table.set_rows(keys)
        self._update_title()
        self._update_detail()
        self.refresh_bindings()  # Esc's words in the key bar follow the filter

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_filter_by(self, name: str) -> None:
        key = self.table.cursor_key
        if key is None:
            return
        e = self.events[int(str(key))]
        value = e.action if name == "action" else getattr(e, name)
        if not value:
            self.notify(f"this event names no {name}", timeout=2)
            return
        self._set_filter(toggle_token(self.filter_text, name, str(value)))

    def _set_filter(self, text: str) -> None:
        self.filter_text = text
        self.query_one(FilterBar).value = text
        self._apply_filter()

    @on(FilterBar.Changed, "#filter")
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        if event.value != self.filter_text:
            self.filter_text = event.value
            self._apply_filter()

    @on(FilterBar.Closed, "#filter")
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        if event.cleared:
            self._set_filter("")
        self.table.focus()

    def action_verify(self) -> None:
        self.verify()

    def action_back(self) -> None:
        if self.filter_text:
            self._set_filter("")
            return
        self.app.pop_screen()

    def key_description(self, binding: Binding) -> str:
        """What a key does right now, for the key bar and help: Esc first drops a filter."""
        if binding.action == "back" and self.filter_text:
            return "Clear filter"
        return binding.description

    @on(VirtualTable.RowSelected, "#events")
    def _selected(self, event: VirtualTable.RowSelected) -> None:
        e = self.events[int(str(event.key))]
        if e.model:
            self.console_app.open_model(e.model, e.version or None)

    @on(VirtualTable.CursorMoved, "#events")
    def _moved(self, event: VirtualTable.CursorMoved) -> None:
        self._update_detail()

    # -- text --------------------------------------------------------------------------------

    def _update_title(self) -> None:
        pal = palette_of(self.app)
        left = Text.assemble(
            ("cd4ml-console", pal.muted), (" \u203a ", pal.muted), ("audit log", pal.heading)
        )
        right = Text()
        if self.problem:
            right.append("⚠ unreadable", style=pal.warn)
        elif self.events:
            shown = len(self.events)
            right.append(
                fmt.plural(shown, "event")
                if self.total <= shown
                else f"newest {shown:,} of {self.total:,}",
                style=pal.muted,
            )
            if self.filter_text.strip():
                right.append(
                    f"  filter \u201c{self.filter_text.strip()}\u201d {self.table.row_count}",
                    style=pal.accent,
                )
        if self.check is not None:
            ok = self.check.result.ok
            right.append(
                "  ✓ verified" if ok else f"  ✗ bad at seq {self.bad_seq}",
                style=pal.ok if ok else pal.err,
            )
        self.query_one(TitleBar).update(title_line(left, right))

    def _update_detail(self) -> None:
        key = self.table.cursor_key
        detail = self.query_one("#detail", Static)
        if key is None:
            detail.update("")
            return
        e = self.events[int(str(key))]
        detail.update(event_detail(e, palette_of(self.app), self.ends.get(e.request_id)))
