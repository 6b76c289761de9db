"""Where the time goes: ``python -m bench --profile NAME``.

Uses pyinstrument when it is installed (a sampling profiler that reads async code well;
``pip install pyinstrument``), else cProfile sorted by cumulative time. Both see only the main
thread: time spent in ``asyncio.to_thread`` work or in git subprocesses shows up as
``epoll.poll`` / ``select``; ``ci-index-deep`` profiles the CI folder indexing (a thread in the
console) on the main thread so it can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import workspaces as wsmod
from bench.measure import bench_env


def _status(spec: wsmod.Spec) -> Callable[[], None]:
    path = wsmod.ensure(spec).path

    def go() -> None:
        from console.cli.group import cli

        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            cli(["-w", str(path), "status", "--json"], prog_name="cd4ml-console")

    return go


def _ci_index_deep() -> None:
    from console.backends.runs_ci import RunsFolderCI
    from console.config import load_config
    from console.plugins import BackendContext
    from console.plugins.options import RunsFolderConfig

    path = wsmod.ensure(wsmod.DEEP).path
    config = load_config(None, path)
    ctx = BackendContext(workspace=path, state_dir=path / ".cd4ml", config=config, timeout=30)
    RunsFolderCI(RunsFolderConfig(), ctx)._refresh()


def _tui_deep() -> None:
    from bench.pilot_keys import _until, rows_filled
    from console.config import load_config
    from console.tui.app import ConsoleApp
    from console.tui.launch import Launch
    from console.tui.screens.model import ModelScreen

    path = wsmod.ensure(wsmod.DEEP).path

    async def go() -> None:
        app = ConsoleApp(load_config(None, path), launch=Launch(model="model-0000"))
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(lambda: isinstance(app.screen, ModelScreen), 60, "the model screen")
            screen: Any = app.screen
            await _until(lambda: rows_filled(screen), 60, "the rows")
            await pilot.press("q")

    asyncio.run(go())


def _tui_start(spec: wsmod.Spec) -> Callable[[], None]:
    """From `cd4ml-console -w WS` to the overview showing its first model name (headless)."""
    path = wsmod.ensure(spec).path

    def go() -> None:
        from console.cli.runtime import State

        config = State(path, None, None, False, False).config()
        from bench.pilot_keys import _until
        from console.tui.app import ConsoleApp

        async def auto(pilot: Any) -> None:
            app = pilot.app
            screen: Any = app.screen
            await _until(lambda: bool(getattr(screen, "models", None)), 60, "the models")
            await pilot.pause()
            app.exit(0)

        ConsoleApp(config).run(headless=True, size=(120, 40), auto_pilot=auto)

    return go


def targets() -> dict[str, Callable[[], None]]:
    wide_noidx = wsmod.Spec("wide", 1000, 5, artifacts_index=False)
    return {
        "status-small": _status(wsmod.SMALL),
        "status-wide": _status(wsmod.WIDE),
        "status-wide-noidx": _status(wide_noidx),
        "status-deep": _status(wsmod.DEEP),
        "ci-index-deep": _ci_index_deep,
        "tui-deep": _tui_deep,
        "tui-start-small": _tui_start(wsmod.SMALL),
        "tui-start-wide": _tui_start(wsmod.WIDE),
    }


def profile(name: str) -> int:
    """Run target ``name`` once under a profiler and print the report."""
    import os

    os.environ.update({k: v for k, v in bench_env().items() if k.startswith("CD4ML_")})
    target = targets()[name]
    started = time.perf_counter()
    import importlib.util

    if importlib.util.find_spec("pyinstrument") is not None:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        target()
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(target)
        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(40)
    print(f"{name}: {time.perf_counter() - started:.2f}s wall (under the profiler)")
    return 0
