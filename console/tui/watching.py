"""After a promotion or rollback from the TUI, watch the new version for the SLO window: the
model screen shows how it goes, and a notification says how it ended — "healthy after 10 min"
or "breach: p95 1.7 s > 500 ms — R to roll back"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.services.release import ActionResult
    from console.services.watch import WatchState
    from console.tui.app import ConsoleApp

WATCHED = ("promote", "approve", "rollback")


class Watches:
    """One watch per model (a newer change replaces it), run in the app's workers."""

    def __init__(self, app: ConsoleApp) -> None:
        self.app = app
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests pass their own
        self._states: dict[str, WatchState] = {}

    def get(self, model: str) -> WatchState | None:
        """The newest services.watch.WatchState of ``model``, if one was started."""
        return self._states.get(model)

    def after(self, result: ActionResult | None) -> None:
        """Start watching what an executed release action moved."""
        if result is None or result.status != "executed" or result.action not in WATCHED:
            return
        if result.model and result.stage and result.version:
            self.start(result.model, result.stage, result.version)

    def start(self, model: str, stage: str, version: str) -> None:
        config = self.app.config
        if config is None or self.app.services is None:
            return
        if not config.slo_for(model).configured:
            self.app.notify(
                f"{model} has no SLO ([slo] in the config): {stage} {version} is not watched",
                timeout=6,
            )
            return
        self.app.run_worker(
            self._run(model, stage, version),
            group=f"watch:{model}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _run(self, model: str, stage: str, version: str) -> None:
        from console.services.watch import watch

        app = self.app
        services = app.services
        assert services is not None  # start() checked it
        window = app.loaded_config.slo_for(model).window_seconds
        try:
            state = await watch(
                services.health,
                model,
                stage,
                version,
                duration=window,
                interval=max(float(app.refresh_seconds or 5.0), 1.0),
                clock=app.clock,
                sleep=self.sleep,
                on_update=self._update,
            )
        except Exception as exc:  # the verdicts say "unknown" on a backend failure: a bug here
            app.notify(
                f"the watch of {model} {stage} {version} stopped: {type(exc).__name__}: {exc}",
                severity="error",
                timeout=15,
            )
            raise
        breach = state.outcome == "breach"
        app.notify(
            f"{state.message}" + (" — R to roll back" if breach else ""),
            title=f"{model} {stage} {version}",
            severity="error" if breach else "information" if state.exit_code == 0 else "warning",
            timeout=30 if breach else 10,
        )

    def _update(self, state: WatchState) -> None:
        self._states[state.model] = state
        from console.tui.screens.model import ModelScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, ModelScreen) and screen.model_name == state.model:
                screen.update_watch()
