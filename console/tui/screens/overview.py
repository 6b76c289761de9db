"""The overview: one row per model, filled in as the services answer.

The visible rows are fetched first, then the rest in the background, each set in one batch
per backend (services.overview), so a workspace of 1,000 models opens as fast as one of four
and is whole about one batch later. Rows keep their last data while a
refresh runs; a failing backend marks the rows it affects and says why in the detail bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from console.tui.actions import ActionContext
from console.tui.headers import overview_detail, overview_title
from console.tui.palette import palette_of
from console.tui.rows import (
    OVERVIEW_COLUMNS,
    UNKNOWN_APPROVALS,
    OverviewRow,
    keep_ci,
    keep_health,
    overview_cells,
    summarize,
    with_ci,
    with_health,
    with_live,
)
from console.tui.screens.base import ConsoleScreen
from console.tui.widgets.bars import FilterBar, TitleBar, follow_theme, tolerate_teardown
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.vtable import Cell, VirtualTable

if TYPE_CHECKING:
    from console.domain import MetricSeries, Model, ModelVersion
    from console.services.overview import ModelView, Section
    from console.tui.startcache import Listed

    Trend = tuple[MetricSeries | None, Section]

FULL_REFRESH_EVERY = 6  # ticks between full row refreshes (live health refreshes every tick)
BACKGROUND_FILL_LIMIT = 5000  # load every row up front, in batches, for workspaces this small
CHUNK = 50  # rows read together (one batch per backend), after the visible ones
HEALTH_READS = 16  # rows whose verdicts and rollback records are read at once
# The CI of the rows on screen gets this long before the background fill competes with it for
# the CPU: time to data on 1,000 models was 1.5 s with the fill at once, 1.0 s with the start.
CI_HEAD_START = 1.0


class ModelsTable(VirtualTable):
    """The overview's table: Enter opens the model."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Open model"),
    ]
    help_group = "models table"


def matches(row_name: str, description: str, words: list[str]) -> bool:
    hay = f"{row_name} {description}".lower()
    return all(w in hay for w in words)


class OverviewScreen(ConsoleScreen):
    """Every model at a glance: stages, candidates, CI, live health, backend state."""

    CSS_PATH = "overview.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding(
            "d",
            "toggle_deprecated",
            "Deprecated",
            id="overview.deprecated",
            tooltip="Show or hide deprecated models (gto show hides them)",
        ),
    ]

    help_title = "Overview"

    def __init__(self) -> None:
        super().__init__()
        self.models: list[
            Model | Listed
        ] = []  # Listed: the last session's, until the registry answers
        self._by_name: dict[str, Model] = {}
        self.rows: dict[str, OverviewRow] = {}
        self._inflight: set[str] = set()
        self._health_wanted: dict[str, None] = {}  # rows whose verdicts are to be read, in order
        self._health_reader: Worker[None] | None = None
        self.registry_section: Section | None = None
        self.filter_text = ""
        self.show_deprecated = False  # like `gto show`: retired models only on request
        self._viewport_timer: Timer | None = None
        self._ticker: Timer | None = None
        self._ticks = 0
        self.pending_counts: dict[str, int] | None = None  # model -> requests awaiting approval
        self.pending_unknown = ""  # why the requests could not be read (APPR shows ?)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title")
        yield ModelsTable(OVERVIEW_COLUMNS, self._cells, id="models", empty_text="loading models…")
        yield Static("", id="detail")
        yield FilterBar("filter models by name or description", id="filter")
        yield KeyBar()

    @property
    def table(self) -> ModelsTable:
        return self.query_one("#models", ModelsTable)

    def on_mount(self) -> None:
        listing = self.console_app.listing
        if listing and not self.models:  # last session's names until the registry answers
            self.models = list(listing[0])
            self._apply_filter()
        self._update_title()
        self._update_detail()
        self.table.focus()
        self.load_models()
        follow_theme(self, self._repaint)

    def _repaint(self) -> None:
        self._update_title()
        self._update_detail()

    def config_loaded(self) -> None:
        """The app has validated its config (after the first frame): the real workspace name."""
        self._update_title()

    def _cells(self, key: Hashable) -> dict[str, Cell]:
        name = str(key)
        row = self.rows.get(name) or OverviewRow(name=name)
        return overview_cells(row, palette_of(self.app), self.console_app.clock())

    # -- loading -----------------------------------------------------------------------------

    @work(group="models", exclusive=True)
    @tolerate_teardown
    async def load_models(self) -> None:
        app = self.console_app
        await app.ready.wait()
        self._start_ticking()
        models, section = await self.services.overview.list_models()
        if not self.is_attached:
            return
        self.registry_section = section
        self.models = list(models)
        self._by_name = {m.name: m for m in models}
        app.catalog.models = {m.name: m.description for m in self.models}
        self._apply_filter()
        if section.ok:
            if app.cache_key is not None:
                self.save_listing(app.cache_key)
            app.nav.models_listed()
        self.load_pending()
        self._update_title()
        if self.is_current:  # under a model screen opened at start: rows load when shown
            self._load_shown(force=True)

    def _load_shown(self, *, force: bool = False) -> None:
        first = self.request_rows(self.table.visible_keys(margin=5), force=force)
        if len(self.models) <= BACKGROUND_FILL_LIMIT:
            self.fill_rest(first)

    def on_screen_resume(self) -> None:
        if self._by_name and len(self.rows) < len(self.models):
            self._load_shown()

    def _start_ticking(self) -> None:
        """Refresh on the configured interval (known once the config is validated)."""
        seconds = self.console_app.refresh_seconds
        if self._ticker is None and seconds and seconds > 0:
            self._ticker = self.set_interval(seconds, self._tick)

    @work(group="listing", exclusive=True, thread=True)
    def save_listing(self, key: str) -> None:
        """Keep the model list for the next start's first frame (see console.tui.startcache)."""
        from console.tui.startcache import Listed, write_listing

        listed = [Listed(m.name, m.description) for m in self.models]
        write_listing(key, listed)
        app = self.console_app
        shown = app.listing[0] if app.listing else None
        frame = app.first_frame
        if frame is not None and listed != shown:
            frame.forget()  # the kept first frame shows other models

    @work(group="pending", exclusive=True)
    @tolerate_teardown
    async def load_pending(self) -> None:
        """APPR: requests waiting for approval per model, from one read of the audit log."""
        app = self.console_app
        await app.ready.wait()
        try:
            waiting = await app.release.pending()
        except Exception as exc:  # no audit backend or an unreadable log: APPR says unknown
            if not self.is_attached:
                return
            message = getattr(exc, "message", str(exc))
            if not self.pending_unknown:
                self.notify(f"Approvals unknown (APPR ?): {message}", severity="warning")
            self.pending_unknown, self.pending_counts = message, None
            self._set_approvals(lambda name: UNKNOWN_APPROVALS)
            return
        self.pending_unknown = ""
        counts: dict[str, int] = {}
        for view in waiting:
            counts[view.request.model] = counts.get(view.request.model, 0) + 1
        if not self.is_attached:
            return
        self.pending_counts = counts
        self._set_approvals(lambda name: counts.get(name, 0))

    def _set_approvals(self, count: Callable[[str], int]) -> None:
        for name, row in list(self.rows.items()):
            self.rows[name] = replace(row, approvals=count(name))
        self.table.refresh_keys()
        self._update_detail()

    def after_release_change(self, model: str) -> None:
        """A release action changed ``model``: its row and the approvals count."""
        self.request_rows([model], force=True)
        self.load_pending()

    @work(group="fill", exclusive=True)
    @tolerate_teardown
    async def fill_rest(self, first: Worker[asyncio.Event | None] | None = None) -> None:
        """The rows nobody has scrolled to yet, a batch at a time, once the rows on screen
        (the worker ``first``) are in and their CI is, or had a head start."""
        ci: asyncio.Event | None = None
        if first is not None:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                ci = await first.wait()
        if ci is not None:  # a head start, not a wait: a CI server that hangs holds back no row
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ci.wait(), CI_HEAD_START)
        rest = [
            m.name
            for m in self.models
            if m.name not in self.rows
            and (self.show_deprecated or not getattr(m, "deprecated", False))
        ]
        for start in range(0, len(rest), CHUNK):
            chunk = [n for n in rest[start : start + CHUNK] if n not in self.rows]
            if chunk:
                await self._load_rows(chunk)

    def request_rows(
        self, names: Sequence[Hashable], *, force: bool = False
    ) -> Worker[asyncio.Event | None] | None:
        """Load ``names`` (those not loading already; loaded ones only if ``force``) in one
        batch; the worker doing it, whose result is set once their CI is in."""
        if self.console_app.services is None:
            return None  # the first instant (names from the last session): rows load once open
        wanted = [
            str(n)
            for n in names
            if str(n) in self._by_name
            and str(n) not in self._inflight
            and (force or str(n) not in self.rows)
        ]
        if not wanted:
            return None
        self._inflight.update(wanted)
        return self.run_worker(self._load_rows(wanted, claimed=True), group="rows")

    @tolerate_teardown
    async def _load_rows(self, names: list[str], *, claimed: bool = False) -> asyncio.Event | None:
        """The rows, then their newest candidates' CI in a worker of its own: a CI server that
        hangs holds back no version, stage or live figure (the CI column says "…" meanwhile).
        Returns what is set once that CI is in (None: no CI to read)."""
        if not claimed:
            names = [n for n in names if n not in self._inflight]
            self._inflight.update(names)
        try:
            got = await self._rows(names)
        finally:
            self._inflight.difference_update(names)
        if not self.is_attached:
            return None
        wanted = []
        for row, newest in got:
            if self.pending_unknown:
                row = replace(row, approvals=UNKNOWN_APPROVALS)
            elif self.pending_counts is not None:
                row = replace(row, approvals=self.pending_counts.get(row.name, 0))
            old = self.rows.get(row.name)
            if newest is not None and old is not None and old.newest == row.newest:
                row = keep_ci(row, old)  # the last runs until the new ones come: no blink
            if old is not None:
                row = keep_health(row, old)  # likewise the verdicts and rollback marks
            self.rows[row.name] = row
            self._remember_versions(row)
            if newest is not None:
                wanted.append((row.name, newest))
        self._rows_changed(names)
        # Apart: verdicts (a window read per stage) and rollback records (the audit log and
        # the registry's history) hold back no version or live figure of the row.
        self._want_health([r.name for r, _ in got])
        if not wanted:
            return None
        done = asyncio.Event()  # apart: the next chunk of rows (fill_rest) need not wait for it
        self.run_worker(self._load_ci(wanted, done), group="rows-ci")
        return done

    def _want_health(self, names: list[str]) -> None:
        """Queue ``names``' verdicts and rollback records; one worker reads them, HEALTH_READS
        rows at a time: the batches of rows come faster than their audit reads, and a worker
        each had put every row's reads in flight at once (+15 MB at 1,000 models)."""
        self._health_wanted.update(dict.fromkeys(names))
        if self._health_reader is None or self._health_reader.is_finished:
            self._health_reader = self.run_worker(self._read_health(), group="rows-health")

    @tolerate_teardown
    async def _read_health(self) -> None:
        while self._health_wanted and self.is_attached:
            names = list(itertools.islice(self._health_wanted, HEALTH_READS))
            for name in names:
                del self._health_wanted[name]
            await self._load_health(names)

    async def _load_health(self, names: list[str]) -> None:
        services = self.services
        shown = [n for n in names if n in self.rows]
        found = await asyncio.gather(
            *(
                asyncio.gather(
                    services.health.model(n, self._serving(n)), services.incidents.rolled_back(n)
                )
                for n in shown
            )
        )
        if not self.is_attached:
            return
        for name, (verdicts, (records, _)) in zip(shown, found, strict=True):
            row = self.rows.get(name)
            if row is not None:
                self.rows[name] = with_health(
                    row, verdicts, records, prod_stage=self.config.prod_stage
                )
        self._rows_changed(shown)

    @tolerate_teardown
    async def _load_ci(self, wanted: list[tuple[str, ModelVersion]], done: asyncio.Event) -> None:
        from console.services.overview import VersionDetail

        try:
            found = await self.services.overview.ci_many(wanted)
        finally:
            done.set()
        if not self.is_attached:
            return
        for name, version in wanted:
            row = self.rows.get(name)
            if row is not None and row.newest == version.version:
                detail = VersionDetail(model=name, version=version.version)
                self.rows[name] = with_ci(row, detail.with_ci(found[(name, version.version)]))
        self._rows_changed([n for n, _ in wanted])

    def _rows_changed(self, names: list[str]) -> None:
        self.table.refresh_keys(list(names))
        self._update_detail()
        self._update_title()

    async def _rows(self, names: list[str]) -> list[tuple[OverviewRow, ModelVersion | None]]:
        """The models' rows without their CI, each with its newest candidate (None: none
        waits): one overview batch for all of them, and their trends."""
        services = self.services
        views, trends = await asyncio.gather(
            services.overview.overview(
                [self._by_name[n] for n in names], with_details=False, candidates_detail=1
            ),
            asyncio.gather(*(services.live.trend(n, points=24) for n in names)),
        )
        return [self._row(view, trend) for view, trend in zip(views, trends, strict=True)]

    def _row(
        self, view: ModelView, trend_and_section: Trend
    ) -> tuple[OverviewRow, ModelVersion | None]:
        """A model's row without its CI, and the newest candidate (None: none waits)."""
        config = self.config
        trend, trend_section = trend_and_section
        newest = None
        if view.candidates:  # only the newest candidate's CI, read next
            newest = next(v for v in view.versions if v.version == view.candidates[-1])
        sections = (
            {} if view.stage_version(config.prod_stage) is None else {"metrics": trend_section}
        )
        row = summarize(view, config.prod_stage, config.stages, trend=trend, sections=sections)
        if row.production is None:  # nothing serves: no live health is expected
            row = _without(row, "metrics")
        return row, newest

    def _remember_versions(self, row: OverviewRow) -> None:
        app = self.console_app
        known = [
            (v, s)
            for v, s in ((row.production, "production"), (row.staging, row.staging_name))
            if v
        ]
        if row.newest and row.newest not in {v for v, _ in known}:
            known.append((row.newest, "newest candidate"))
        app.catalog.versions[row.name] = known

    def _tick(self) -> None:
        """Live health every interval; the slower-moving rest of a row every few intervals."""
        if not self.is_current:
            return
        self._ticks += 1
        visible = [str(k) for k in self.table.visible_keys()]
        if self._ticks % FULL_REFRESH_EVERY == 0:
            self.request_rows(visible, force=True)
            self.load_pending()
        else:
            live = [n for n in visible if n in self.rows and self.rows[n].production]
            if live:
                self.run_worker(self._load_live(live), group="live-rows", exclusive=True)

    @tolerate_teardown
    async def _load_live(self, names: list[str]) -> None:
        services = self.services
        results = await asyncio.gather(
            *(
                asyncio.gather(
                    services.overview.health(n),
                    services.live.trend(n, points=24),
                    services.health.model(n, self._serving(n)),
                )
                for n in names
            )
        )
        prod = self.config.prod_stage
        for name, ((health, hsec), (trend, tsec), verdicts) in zip(names, results, strict=True):
            row = self.rows.get(name)
            if row is not None:
                row = with_live(row, health, hsec, trend, tsec)
                self.rows[name] = with_health(row, verdicts, prod_stage=prod)
        self.table.refresh_keys(list(names))
        self._update_detail()

    def _serving(self, name: str) -> dict[str, str | None]:
        """What each stage of ``name``'s row holds (for its verdicts between full reads)."""
        row = self.rows[name]
        prod = self.config.prod_stage
        return (
            {row.staging_name: row.staging, prod: row.production}
            if row.staging_name
            else {prod: row.production}
        )

    def refresh_data(self) -> None:
        """`r`: re-read the model list, the visible rows and the requests awaiting approval."""
        self.load_models()
        self.notify("Refreshing…", timeout=1.5)

    # -- events ------------------------------------------------------------------------------

    @on(VirtualTable.ViewportChanged, "#models")
    def _viewport(self, event: VirtualTable.ViewportChanged) -> None:
        # Paint the new rows first (as skeletons); fetch them a moment later.
        if self._viewport_timer is not None:
            self._viewport_timer.stop()
        self._viewport_timer = self.set_timer(0.05, self._fetch_visible)

    def _fetch_visible(self) -> None:
        self._viewport_timer = None
        if self.models and self.is_attached:
            self.request_rows(self.table.visible_keys(margin=5))

    @on(VirtualTable.CursorMoved, "#models")
    def _moved(self, event: VirtualTable.CursorMoved) -> None:
        self._update_detail()

    @on(VirtualTable.RowSelected, "#models")
    def _selected(self, event: VirtualTable.RowSelected) -> None:
        self.console_app.open_model(str(event.key))

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_clear_filter(self) -> None:
        bar = self.query_one(FilterBar)
        if self.filter_text:
            bar.value = ""
            self.filter_text = ""
            self._apply_filter()

    @on(FilterBar.Changed, "#filter")
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.filter_text = event.value
        self._apply_filter()

    @on(FilterBar.Closed, "#filter")
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        if event.cleared:
            self.filter_text = ""
            self._apply_filter()
        self.table.focus()

    def action_toggle_deprecated(self) -> None:
        """`d`: show the deprecated models too (marked †), or hide them again."""
        self.show_deprecated = not self.show_deprecated
        self._apply_filter()
        hidden = self.hidden_deprecated()
        if self.show_deprecated:
            self.notify("Showing deprecated models (marked \u2020)", timeout=3)
        else:
            self.notify(
                f"Hiding {hidden} deprecated model(s)" if hidden else "No deprecated models",
                timeout=3,
            )

    def hidden_deprecated(self) -> int:
        """How many deprecated models the overview leaves out now."""
        if self.show_deprecated:
            return 0
        return sum(1 for m in self.models if getattr(m, "deprecated", False))

    def _apply_filter(self) -> None:
        words = self.filter_text.lower().split()
        names = [
            m.name
            for m in self.models
            if (self.show_deprecated or not getattr(m, "deprecated", False))
            and (not words or matches(m.name, m.description, words))
        ]
        self.table.empty_text = self._empty_text(words)
        self.table.set_rows(names)
        self._update_title()
        self._update_detail()

    def _empty_text(self, words: list[str]) -> str:
        """What an empty table says: why there is nothing to show."""
        if words:
            return "no model matches the filter"
        registry = self.registry_section
        if registry is not None and not registry.ok:  # not "no models": we could not ask
            return f"the registry did not answer: {registry.error} (r retries)"
        if self.hidden_deprecated():
            return "every model is deprecated: d shows them"
        return "no models found"

    def action_context(self) -> ActionContext:
        name = self.table.cursor_key
        row = self.rows.get(str(name)) if name is not None else None
        return ActionContext(
            model=str(name) if name is not None else None,
            version=row.newest if row else None,
            production=row.production if row else None,
        )

    # -- text --------------------------------------------------------------------------------

    def _update_title(self) -> None:
        app = self.console_app
        title = overview_title(
            palette_of(app),
            app.label,
            ready=app.services is not None,
            total=len(self.models),
            shown=self.table.row_count,
            filter_text=self.filter_text,
            rows=self.rows.values(),
            registry=self.registry_section,
            hidden=self.hidden_deprecated(),
        )
        self.query_one(TitleBar).update(title)

    def _update_detail(self) -> None:
        app = self.console_app
        key = self.table.cursor_key
        name = str(key) if key is not None else None
        row = self.rows.get(name) if name else None
        model = self._by_name.get(name) if name else None
        description = (row.description if row else "") or (model.description if model else "")
        text = overview_detail(
            palette_of(app), app.clock(), name, row, description, self.registry_section
        )
        self.query_one("#detail", Static).update(text)


def _without(row: OverviewRow, kind: str) -> OverviewRow:
    return replace(row, problems=tuple(p for p in row.problems if p.kind != kind))
