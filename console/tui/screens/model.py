"""One model: stages, a virtualised versions table, and lineage, CI, live and audit panels.

The versions table knows every version at once (a list of names) but fetches the details of
only the rows on screen; the panels follow the selected version after a short debounce, each
filled by its own worker so a slow backend only delays its own panel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.timer import Timer
from textual.widgets import Static

from console.tui.actions import RELEASE_ACTIONS
from console.tui.headers import incident_line, model_title, stage_line, watch_line
from console.tui.palette import palette_of
from console.tui.rows import version_cells, version_columns
from console.tui.screens.model_release import ModelReleaseSide
from console.tui.screens.versionbook import VersionBook
from console.tui.widgets.bars import FilterBar, TitleBar, follow_theme, tolerate_teardown
from console.tui.widgets.ci import CIPanel
from console.tui.widgets.deck import PanelDeck
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.lineage import LineagePanel
from console.tui.widgets.live import LivePanel
from console.tui.widgets.panel import Panel
from console.tui.widgets.trail import TrailPanel
from console.tui.widgets.vtable import Cell, VirtualTable

if TYPE_CHECKING:
    from collections import OrderedDict

    from console.services.health import StageHealth
    from console.services.incidents import RolledBack
    from console.services.overview import ModelView, VersionDetail
    from console.services.release.request_fold import RequestView

SELECT_DEBOUNCE = 0.15
AGE_TICK = 1.0
VIEWPORT_DEBOUNCE = 0.05
WIDE = (160, 40)  # from this size on, every panel is shown at once
RELEASE_GROUP = Binding.Group("release ")  # the trailing space keeps the footer legible


class VersionsTable(VirtualTable):
    """The versions table: Enter moves to the panels; space marks versions to compare."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", show=False),
        Binding("space", "toggle_mark", "Mark", show=False),
    ]
    help_group = "versions table"


class ModelScreen(ModelReleaseSide):
    """Everything about one model on one screen."""

    CSS_PATH = "model.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter", key_display="/"),
        *(
            Binding(a.key, f"app.{a.id}", a.label, group=RELEASE_GROUP)
            for a in RELEASE_ACTIONS.values()
            if a.id != "audit"
        ),
        Binding("1", "panel('lineage')", "Lineage panel", show=False),
        Binding("2", "panel('ci')", "CI panel", show=False),
        Binding("3", "panel('live')", "Live panel", show=False),
        Binding("4", "panel('trail')", "Audit trail panel", show=False),
        Binding(
            "right_square_bracket", "cycle_panel(1)", "Next panel", show=False, key_display="]"
        ),
        Binding(
            "left_square_bracket", "cycle_panel(-1)", "Previous panel", show=False, key_display="["
        ),
    ]

    def __init__(self, model: str, *, version: str | None = None) -> None:
        super().__init__()
        self.model_name = model
        self.help_title = model
        self.wanted_version = version
        self.book: VersionBook | None = None
        self._pending: dict[str, int] = {}  # details on their way: version -> generation
        self._generation = 0  # `r` starts a new one: answers of an older one are dropped
        self.selected: str | None = None
        self.filter_text = ""
        self._select_timer: Timer | None = None
        self._viewport_timer: Timer | None = None
        self._metric_names: list[str] = []  # the metric columns (three at most)
        self._key_metrics: list[str] = []  # every key metric, for the worst change
        self.waiting: list[RequestView] = []  # pending requests of this model
        self.incidents: dict[str, RolledBack] = {}  # by version
        self.verdicts: dict[str, StageHealth] = {}  # by stage
        self._live_stage: str | None = None  # the other stage the Live panel shows
        # The versions table first: the panels start loading once it is shown.
        self._table_shown = asyncio.Event()

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        config = self.config
        self.book = VersionBook(config.prod_stage)
        cfg = config.models.get(self.model_name)
        self._key_metrics = list(cfg.key_metrics) if cfg else []
        self._metric_names = self._key_metrics[:3]
        yield TitleBar(id="title")
        yield Static("", id="stages")
        yield Static("", id="requests")
        yield Static("", id="incident")
        yield Static("", id="watch")
        with Container(id="body"):
            yield VersionsTable(
                version_columns(self._metric_names),
                self._cells,
                markable=True,
                id="versions",
                empty_text="loading versions…",
            )
            yield PanelDeck(id="deck")
        yield FilterBar("filter versions by version, author, commit or stage", id="filter")
        yield KeyBar()

    @property
    def table(self) -> VersionsTable:
        return self.query_one("#versions", VersionsTable)

    def on_mount(self) -> None:
        self._layout_for(self.size.width, self.size.height)
        self._update_title()
        self.table.focus()
        self.load_view()
        self.load_live()
        self.load_trail()
        self.load_pending()
        self.load_incidents()
        self.update_watch()
        seconds = self.console_app.refresh_seconds
        if seconds and seconds > 0:
            self.set_interval(seconds, self._tick)
        # The stages' ages ("4s") count on between reads; a second is the finest they show.
        self.set_interval(AGE_TICK, self._update_stages)
        follow_theme(self, self._repaint)

    def _repaint(self) -> None:
        self._update_title()
        self._update_stages()
        self._update_requests()

    def on_resize(self, event: events.Resize) -> None:
        self._layout_for(event.size.width, event.size.height)
        self._update_stages()

    def _layout_for(self, width: int, height: int) -> None:
        self.set_class(width >= WIDE[0] and height >= WIDE[1], "-wide")
        self._fit_table()

    def _fit_table(self) -> None:
        """Stacked layout: a short list of versions leaves its space to the panels."""
        rows = self.table.row_count
        wide = self.has_class("-wide")
        self.table.styles.max_height = (
            None if wide or not self.versions.by_name else max(5, rows + 2)
        )

    # -- loading -----------------------------------------------------------------------------

    @work(group="view", exclusive=True)
    @tolerate_teardown
    async def load_view(self) -> None:
        try:
            await self._load_view()
        finally:  # once the table is on screen (the next refresh), not before it
            if self.is_attached:
                self.call_after_refresh(self._table_shown.set)
            else:
                self._table_shown.set()

    async def _load_view(self) -> None:
        await self.console_app.ready.wait()
        from console.domain import Model

        app = self.console_app
        cfg = self.config.models.get(self.model_name)
        description = app.catalog.models.get(self.model_name) or (cfg.description if cfg else "")
        view = await self.services.overview.model_view(
            Model(name=self.model_name, description=description),
            with_details=False,
            with_health=False,
        )
        if not self.is_attached:
            return
        self.versions.load(view)
        prod = self.production
        app.catalog.versions[self.model_name] = [
            (a.version, a.stage) for a in view.stages if a.version
        ]
        if not view.versions:
            reason = view.sections.get("registry")
            self.table.empty_text = (
                f"no versions: {reason.error}"
                if reason is not None and reason.error
                else f"no versions registered for {self.model_name}"
            )
            for panel in (self.query_one(LineagePanel), self.query_one(CIPanel)):
                panel.show_loading(self.table.empty_text)  # no version to show, and why
        cursor = self.selected
        if self.wanted_version is not None and view.versions:
            cursor = self._wanted(self.wanted_version) or cursor
        self.wanted_version = None
        self._apply_filter(cursor=cursor)
        wanted = list(self.table.visible_keys(margin=3))
        if prod:
            wanted.append(prod)
        self.request_details([str(k) for k in wanted])
        self._update_title()
        self._update_stages()
        if self.selected is None and self.table.cursor_key is not None:
            self._select(str(self.table.cursor_key), immediate=True)

    @property
    def versions(self) -> VersionBook:
        assert self.book is not None, "composed"
        return self.book

    @property
    def view(self) -> ModelView | None:
        return self.versions.view

    @property
    def details(self) -> OrderedDict[str, VersionDetail]:
        return self.versions.details

    @property
    def production(self) -> str | None:
        return self.versions.production

    def version_names(self) -> list[str]:
        return list(self.versions.order)

    def request_details(self, names: list[str]) -> None:
        missing = self.versions.missing(names, set(self._pending))
        if missing:
            self._pending.update(dict.fromkeys(missing, self._generation))
            self.run_worker(self._load_details(missing, self._generation), group="details")

    @tolerate_teardown
    async def _load_details(self, names: list[str], generation: int) -> None:
        """The rows' facts and their CI runs, read side by side: each fills in when it comes,
        so a CI server that hangs holds back no metric or data version."""
        overview = self.services.overview
        versions = [self.versions.by_name[n] for n in names]

        async def facts() -> None:
            got = await overview.version_details(self.model_name, versions, with_ci=False)
            if self._current(generation):
                self.versions.add_details(got)
                if not self._metric_names:
                    self._learn_metrics(got.values())
                self._show_details(list(got), everything=self.production in got)

        async def ci() -> None:
            got = await overview.version_ci(versions)
            if self._current(generation):
                self.versions.add_ci(got)
                self._show_details(list(got))

        try:
            await asyncio.gather(facts(), ci())
        finally:
            for n in names:
                if self._pending.get(n) == generation:
                    del self._pending[n]

    def _current(self, generation: int) -> bool:
        """Is a read of this generation still wanted? (`r` pressed while it hung: a newer read
        answers.)"""
        return self.is_attached and generation == self._generation

    def _show_details(self, names: list[str], *, everything: bool = False) -> None:
        if everything:  # production's facts are every row's base
            self.table.refresh_keys()
        else:
            self.table.refresh_keys([n for n in names if n in self.details])
        if self.selected in names and self.selected in self.details:
            self.query_one(CIPanel).update_detail(self.details[self.selected])
        self._update_title()

    def _learn_metrics(self, details: Iterable[VersionDetail]) -> None:
        names: list[str] = []
        for d in details:
            names.extend(k for k in sorted(d.metrics) if k not in names)
        if names:
            self._key_metrics = names
            self._metric_names = names[:3]
            self.table.columns = version_columns(self._metric_names)
            self.table.restyle()
            self.table.on_resize()

    @work(group="selected", exclusive=True)
    @tolerate_teardown
    async def load_selected(self, version: str) -> None:
        await self.console_app.ready.wait()
        if version not in self.details:
            self.request_details([version])
        base = self.versions.base_for(version)
        key = (version, base.version if base else None)
        lineage = self.versions.lineage(key)
        if lineage is None:
            lineage = await self.services.lineage.lineage(
                self.model_name, self.versions.by_name[version], base
            )
            self.versions.keep_lineage(key, lineage)
        if self.selected == version and self.is_attached:
            label = (
                "production" if base is not None and base.version == self.production else "previous"
            )
            self.query_one(LineagePanel).update_lineage(lineage, label)

    def _other_stage(self) -> str | None:
        """The selected version's stage when it is not production (its figures go beside)."""
        if not self.selected or self.book is None or self.selected not in self.versions.by_name:
            return None
        prod = self.config.prod_stage
        held = [s for s in self.versions.stages_of(self.selected) if s != prod]
        return held[-1] if held else None

    @work(group="live", exclusive=True)
    @tolerate_teardown
    async def load_live(self) -> None:
        await self._table_shown.wait()
        config = self.config
        services = self.services
        other, version = self._other_stage(), self.selected
        serving = {a.stage: a.version for a in self.view.stages} if self.view else {}

        async def beside() -> Any:
            if other is None:
                return None
            return await services.live.live(self.model_name, other, version=version)

        async def shadow() -> Any:
            if other is None:
                return None
            return (await services.health.shadow(self.model_name, other, version))[0]

        view, other_view, verdicts, comparison = await asyncio.gather(
            services.live.live(self.model_name),
            beside(),
            services.health.model(self.model_name, serving),
            shadow(),
        )
        if not self.is_attached:
            return
        self._live_stage = other
        self.verdicts = {h.stage: h for h in verdicts}
        self._update_stages()
        panel = self.query_one(LivePanel)
        registry = self.view.sections.get("registry") if self.view is not None else None
        if (
            not view.series
            and view.health is None
            and not view.section.ok
            and self.view is not None
            and not self.production
            and (registry is None or registry.ok)  # a registry down knows nothing of stages
        ):
            panel.no_production(config.prod_stage)
            return
        slo = config.slo_for(self.model_name).configured
        panel.update_live(
            view, other=other_view, verdicts=self.verdicts if slo else {}, shadow=comparison
        )

    @work(group="incidents", exclusive=True)
    @tolerate_teardown
    async def load_incidents(self) -> None:
        """Which versions were rolled back (↩ in the table, the line under the stages)."""
        await self._table_shown.wait()
        records, _ = await self.services.incidents.rolled_back(self.model_name)
        if not self.is_attached:
            return
        self.incidents = dict(records)
        self.table.refresh_keys()
        self._update_stages()
        self._update_incident()

    @work(group="trail", exclusive=True)
    @tolerate_teardown
    async def load_trail(self) -> None:
        await self._table_shown.wait()
        timeline = await self.services.timeline.timeline(self.model_name)
        if self.is_attached:
            self.query_one(TrailPanel).update_timeline(timeline)

    def _tick(self) -> None:
        if self.is_current:
            self.load_live()
            self.update_watch()

    def refresh_data(self) -> None:
        """`r`: retry every panel; visible details and lineage are read again."""
        stale = [str(name) for name in self.table.visible_keys()]
        if self.production:
            stale.append(self.production)
        self.versions.forget(stale)
        self._generation += 1
        self._pending.clear()  # reads still hanging are not waited for: they are read again
        self.load_view()
        self.load_live()
        self.load_trail()
        self.load_pending()
        self.load_incidents()
        if self.selected:
            self.load_selected(self.selected)
        self.notify("Refreshing…", timeout=1.5)

    # -- selection ---------------------------------------------------------------------------

    def _select(self, version: str, *, immediate: bool = False) -> None:
        """Follow the cursor: the panels catch up once the cursor rests (keys stay instant)."""
        self.selected = version
        if self._select_timer is not None:
            self._select_timer.stop()
            self._select_timer = None
        if immediate:
            self._follow(version)
        else:
            self._select_timer = self.set_timer(SELECT_DEBOUNCE, lambda: self._follow(version))

    def _unselect(self, why: str) -> None:
        """No row left to select: the version panels say why, and the keys that act on the
        selected version (p, a, c) find none, rather than one the filter hides."""
        self.selected = None
        if self._select_timer is not None:
            self._select_timer.stop()
            self._select_timer = None
        for panel in (self.query_one(LineagePanel), self.query_one(CIPanel)):
            panel.show_loading(why)

    def _follow(self, version: str) -> None:
        self._select_timer = None
        if version != self.selected or not self.is_attached:
            return
        self._update_incident()
        if self._other_stage() != self._live_stage:  # another stage to put beside production
            self.load_live()
        detail = self.details.get(version)
        ci = self.query_one(CIPanel)
        if detail is not None:
            ci.update_detail(detail)
        else:
            ci.show_loading(f"loading CI runs of {version}…")
        self.load_selected(version)

    def _wanted(self, version: str) -> str | None:
        """The version asked for, with or without its "v"; None (and a notice) when the model
        has no such version."""
        other = version[1:] if version[:1] in "vV" else f"v{version}"
        for name in (version, other):
            if name in self.versions.by_name:
                return name
        self.notify(f"{self.model_name} has no version {version}", severity="warning", timeout=8)
        return None

    def select_version(self, version: str) -> None:
        found = self._wanted(version)
        if found is None:
            return
        version = found
        if not self.table.move_to(version):
            self.query_one(FilterBar).value = ""
            self.filter_text = ""
            self._apply_filter(cursor=version)

    @on(VirtualTable.CursorMoved, "#versions")
    def _moved(self, event: VirtualTable.CursorMoved) -> None:
        if event.key is not None and self.versions.by_name:
            self._select(str(event.key))

    @on(VirtualTable.ViewportChanged, "#versions")
    def _viewport(self, event: VirtualTable.ViewportChanged) -> None:
        # Paint the new rows first (with placeholders); fetch their details a moment later.
        if self._viewport_timer is not None:
            self._viewport_timer.stop()
        self._viewport_timer = self.set_timer(VIEWPORT_DEBOUNCE, self._fetch_visible)

    def _fetch_visible(self) -> None:
        self._viewport_timer = None
        if self.versions.by_name and self.is_attached:
            self.request_details([str(k) for k in self.table.visible_keys(margin=3)])

    @on(VirtualTable.RowSelected, "#versions")
    def _row_selected(self, event: VirtualTable.RowSelected) -> None:
        self.query_one(PanelDeck).focus_active()

    @on(VirtualTable.MarksChanged, "#versions")
    def _marks(self, event: VirtualTable.MarksChanged) -> None:
        self._update_title()

    # -- actions -----------------------------------------------------------------------------

    def action_back(self) -> None:
        if isinstance(self.focused, Panel):
            self.table.focus()
            return
        if self.filter_text:
            self.query_one(FilterBar).action_clear()
            return
        self.app.pop_screen()

    def key_description(self, binding: Binding) -> str:
        """Esc's words follow what it does now (see action_back)."""
        if binding.action == "back":
            if isinstance(self.focused, Panel):
                return "Versions"
            if self.filter_text:
                return "Clear filter"
        return binding.description

    def action_panel(self, name: str) -> None:
        self.query_one(PanelDeck).show(name)

    def action_cycle_panel(self, step: int) -> None:
        self.query_one(PanelDeck).cycle(step)

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

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

    def _apply_filter(self, cursor: str | None = None) -> None:
        self.refresh_bindings()  # Esc's words in the key bar follow the filter
        words = self.filter_text.lower().split()
        if words:
            keys = [
                v for v in self.versions.order if all(w in self.versions.haystack(v) for w in words)
            ]
            self.table.empty_text = "no version matches the filter"
        else:
            keys = self.versions.order
        self.table.set_rows(keys, cursor_key=cursor)
        if not keys and self.versions.order:
            self._unselect("no version matches the filter · esc clears it")
        elif self.selected is None and self.table.cursor_key is not None:
            self._select(str(self.table.cursor_key), immediate=True)  # rows are back
        self._fit_table()
        self._update_title()

    # -- rendering ---------------------------------------------------------------------------

    def _cells(self, key: Hashable) -> dict[str, Cell]:
        app = self.console_app
        config = self.config
        name = str(key)
        prod = self.production
        return version_cells(
            self.versions.by_name[name],
            self.versions.stages_of(name),
            self.details.get(name),
            self.details.get(prod) if prod else None,
            prod_stage=config.prod_stage,
            production=prod,
            metric_names=self._metric_names,
            key_metrics=self._key_metrics,
            specs=config.metric_spec,
            pal=palette_of(app),
            now=app.clock(),
            rolled_back=name in self.incidents,
        )

    def _update_title(self) -> None:
        app = self.console_app
        title = model_title(
            palette_of(app),
            self.model_name,
            self.view.model.description if self.view is not None else "",
            versions=len(self.versions.order) if self.view is not None else None,
            filter_text=self.filter_text,
            shown=self.table.row_count,
            marked=len(self.table.marked),
            problems=self.versions.problems(),
        )
        self.query_one(TitleBar).update(title)

    def _update_stages(self) -> None:
        app = self.console_app
        slo = self.config.slo_for(self.model_name).configured
        bar = self.query_one("#stages", Static)
        width = bar.content_region.width or self.size.width - 2
        line = stage_line(
            palette_of(app),
            app.clock(),
            self.view,
            self.config.prod_stage,
            width=width,
            health=self.verdicts if slo else None,
            rolled_back=self.incidents,
        )
        bar.update(line)

    def _update_incident(self) -> None:
        """'↩ v1.3.0 was rolled back from production … by erin: why' for the selected version."""
        app = self.console_app
        rec = self.incidents.get(self.selected) if self.selected else None
        bar = self.query_one("#incident", Static)
        bar.update(incident_line(palette_of(app), self.selected, rec))
        bar.set_class(rec is not None, "-shown")

    def update_watch(self) -> None:
        """The watch after the last promotion or rollback of this model, while it matters."""
        app = self.console_app
        state = app.watches.get(self.model_name)
        bar = self.query_one("#watch", Static)
        bar.update(watch_line(palette_of(app), state))
        bar.set_class(state is not None, "-shown")
