"""The workspace's life cycle in the app: after the first frame the config is validated and
the backends are built off the UI thread, then the services the screens call; on exit the
workspace is closed. A problem exits saying what to fix (2, a config error) or what failed (1;
never a traceback on screen, details in the log)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from console.logs import redact
from console.tui import wiring
from console.tui.screens.base import ConsoleScreen

if TYPE_CHECKING:
    from console.tui.app import ConsoleApp

log = logging.getLogger(__name__)
T = TypeVar("T")


async def open_workspace(app: ConsoleApp) -> None:
    """Validate the config and build the backends off the UI thread, then the services the
    screens use (run in the app's "workspace" worker)."""
    if app.config is None and not await validate_config(app):
        return
    config = app.loaded_config
    if app.workspace is None:
        from console.services.workspace import open_workspace as opened

        app.workspace = await in_thread(
            app, "open the workspace", functools.partial(opened, config)
        )
        if app.workspace is None:
            return
    app.services = await asyncio.to_thread(
        functools.partial(
            wiring.build_services,
            app.workspace,
            app.clock,
            release=app.injected_release,
            identity=app.identity,
            read_only=app.read_only,
        )
    )
    app.demo_workspace = await asyncio.to_thread(wiring.is_demo, app.workspace)
    if has_quit(app):
        return
    app.ready.set()
    app.actions.reconcile()


async def validate_config(app: ConsoleApp) -> bool:
    """Validate the config off the UI thread; on a problem exit saying what to fix."""
    assert app.load_config is not None
    config = await in_thread(app, "read the config", app.load_config)
    if config is None or has_quit(app):  # quit (q, Ctrl+C) while it loaded: nothing to show it on
        return False
    app.use_config(config)
    app.theming.from_config(config.ui.theme)
    app.refresh_bindings()
    if isinstance(app.screen, ConsoleScreen):
        app.screen.config_loaded()
    app.nav.open_initial()
    return True


async def in_thread(app: ConsoleApp, what: str, call: Callable[[], T]) -> T | None:
    """``call()`` off the UI thread; on a problem (None) ``app`` exits saying what to fix (2, a
    config error) or what failed (1)."""
    from console.config import ConfigError

    try:
        return await asyncio.to_thread(call)
    except ConfigError as exc:
        app.exit(None, return_code=2, message=str(exc))
    except Exception as exc:
        log.exception("could not %s", what)
        app.exit(None, return_code=1, message=f"Could not {what}: {redact(str(exc))}")
    return None


def has_quit(app: ConsoleApp) -> bool:
    """The app quit (its screens are gone, or going) while a worker waited on a thread."""
    return not app.is_running or not app.screen_stack


async def close_workspace(app: ConsoleApp) -> None:
    """Close the workspace the app opened (one handed to it stays open)."""
    if app.workspace is not None and app.owns_workspace:
        try:
            await asyncio.wait_for(app.workspace.aclose(), 5)
        except Exception:  # closing must not hide how the session ended
            log.exception("closing the workspace failed")
