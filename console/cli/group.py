"""The ``cd4ml-console`` command. With no subcommand it opens the TUI.

Only click is imported at module level: ``--help`` must stay fast, so config, pydantic,
backends and Textual are imported inside the commands that need them.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from console.cli.paths import as_path
from console.cli.runtime import (
    EXIT_DEGRADED,
    EXIT_USAGE,
    State,
    fail,
    open_ws,
    quiet_broken_pipe,
    run_async,
)

if TYPE_CHECKING:
    from pathlib import Path


def _help_width() -> int:
    """The width click wraps help to (the terminal's, at most 78 columns), found without the
    ``shutil`` import click would make for it: ``--help`` must stay fast."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        out = sys.__stdout__
        try:
            columns = os.get_terminal_size(out.fileno()).columns if out is not None else 80
        except (AttributeError, ValueError, OSError):  # not a terminal, or a closed stream
            columns = 80
    return max(min(columns, 80) - 2, 50)


class ConsoleGroup(click.Group):
    """The top command: every subcommand's (and --help's) broken pipe ends it quietly."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:  # `--help | head -1`
            quiet_broken_pipe()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            quiet_broken_pipe()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence whole, wrapped (click cuts it at the terminal's
        width with "...", mid-sentence)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=ConsoleGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": _help_width()},
)
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False),
    callback=as_path,
    help="Workspace folder (a git repo, or a folder with cd4ml-console.toml).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    callback=as_path,
    help="Config file (default: ./cd4ml-console.toml, then the user config dir).",
)
@click.option("--theme", help="Theme name (dark, light, high-contrast, colorblind, ...).")
@click.option("--read-only", is_flag=True, help="Hide and refuse every release action.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to the log file.")
@click.version_option(package_name="cd4ml-console", prog_name="cd4ml-console")
@click.pass_context
def cli(
    ctx: click.Context,
    workspace: Path | None,
    config_file: Path | None,
    theme: str | None,
    read_only: bool,
    verbose: bool,
) -> None:
    """Keyboard-driven console for ML release management (CD4ML).

    With no command, opens the console on the workspace. Try `cd4ml-console demo`.
    """
    ctx.obj = State(workspace, config_file, theme, read_only, verbose)
    if ctx.invoked_subcommand is None:
        ctx.exit(open_tui(ctx.obj))


def open_tui(state: State, model: str | None = None, version: str | None = None) -> int:
    """The TUI on the workspace: the config is only located here (no pydantic before the
    first frame); the app validates it right after, exiting 2 with what to fix."""
    # Starting up (imports, Textual, the first frame) allocates a few hundred thousand objects
    # and hardly any garbage cycles: the collector only slows that down (~10 %). The app turns
    # it back on, with those objects frozen, once the first frame is out.
    gc.disable()
    try:
        return _open_tui(state, model, version)
    finally:
        gc.enable()


def _open_tui(state: State, model: str | None, version: str | None) -> int:
    from console.config.locate import ConfigError, locate_config

    try:
        located = locate_config(state.config_file, state.workspace)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    from console.logs import setup_logging

    setup_logging(verbose=state.verbose)
    frame = None
    if model is None:  # the last start's first frame, while Textual loads (see lastframe)
        from console.config.locate import peek_theme
        from console.tui.lastframe import slot_for

        frame = slot_for(
            str(located.where),
            theme=state.theme,
            peeked_theme=peek_theme(located),
            read_only=state.read_only,
        )
        if frame is not None:
            frame.show()
    try:
        try:
            from console.tui.app import run_tui
        except ImportError:  # the TUI is not installed in this build
            if frame is not None:
                frame.release()  # the message goes to the user's screen, not the frame's
            fail("the TUI is not available in this build; use `cd4ml-console status`", EXIT_USAGE)
        return run_tui(
            located,
            theme=state.theme,
            read_only=state.read_only,
            model=model,
            version=version,
            frame=frame,
        )
    finally:
        if frame is not None:
            frame.release()


pass_state = click.make_pass_decorator(State)


@cli.command("open", short_help="Open the console on MODEL's screen (for an incident).")
@click.argument("model")
@click.argument("version", required=False)
@pass_state
def open_model(state: State, model: str, version: str | None) -> NoReturn:
    """Open the console on MODEL's screen, with VERSION selected if given (Esc: overview).

    MODEL may differ in case or be a unique prefix: `cd4ml-console open fraud` opens
    fraud-detector. During an incident, `open MODEL` then `R` rolls back.
    """
    raise SystemExit(open_tui(state, model=model, version=version))


@cli.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
@pass_state
def status(state: State, model: str | None, as_json: bool) -> None:
    """Per model and stage: version, commit, data version, key metrics, CI; production health.

    Exits 1 when some backend failed (the output says which and still shows the rest).
    """
    from console.cli.status import collect_status, render_status

    ws = open_ws(state)

    async def go() -> dict[str, Any]:
        async with ws:
            return await collect_status(ws, model)

    doc = run_async(go)
    keys = {name: m.key_metrics for name, m in ws.config.models.items()}
    if model is not None and not doc["models"] and not doc["errors"]:
        if as_json:
            render_status(doc, as_json=True)
        fail(f"no model named {model!r} in {ws.label}", EXIT_USAGE)
    render_status(doc, as_json=as_json, key_metrics=keys)
    if doc["errors"]:  # the registry did not answer, or another backend failed (stderr)
        raise SystemExit(EXIT_DEGRADED)


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
@pass_state
def versions(state: State, model: str, as_json: bool) -> None:
    """Every version of MODEL: stages, commit, data version, metrics, CI, creator."""
    from console.cli.status import collect_versions, render_versions

    ws = open_ws(state)

    async def go() -> tuple[dict[str, Any], bool]:
        async with ws:
            return await collect_versions(ws, model)

    doc, unknown = run_async(go)
    if unknown:  # the registry has no such model: usage, like `status NOSUCH`
        if as_json:
            render_versions(doc, as_json=True)
        fail(doc["errors"]["registry"], EXIT_USAGE)
    render_versions(doc, as_json=as_json)
    if not doc["versions"] and not doc["errors"] and not as_json:
        click.echo(f"{model} has no versions yet in {ws.label}", err=True)
    if doc["errors"]:
        raise SystemExit(EXIT_DEGRADED)


@cli.command()
@pass_state
def doctor(state: State) -> NoReturn:
    """Check the config and each configured backend, and say what works."""
    from console.cli.doctor import run_doctor

    config = state.config()
    code = run_async(lambda: run_doctor(config))
    raise SystemExit(code)


@cli.command()
@click.option(
    "--shared",
    "group",
    metavar="GROUP",
    required=True,
    help="Make the workspace a group workspace: every user in GROUP acts on this clone.",
)
@pass_state
def init(state: State, group: str) -> NoReturn:
    """Set up the workspace for a team on one bastion (docs/team.md); says what it changed.

    Idempotent: core.sharedRepository=group; .git and the state folder owned by GROUP,
    group-writable, setgid folders; the SQLite audit log created and group-writable; the
    clone in each member's git safe.directory (as root; else in yours, with the line for
    the others).
    """
    from console.cli.doctor import run_init_shared

    config = state.config()
    raise SystemExit(run_async(lambda: run_init_shared(config, group)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> NoReturn:
    """List installed backend plugins and the kinds each provides."""
    from console.cli.doctor import render_plugins

    raise SystemExit(render_plugins(as_json=as_json))


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False), callback=as_path)
@click.option("--no-tui", is_flag=True, help="Build the workspace and exit (no servers).")
@click.option("--serve", is_flag=True, help="Only run the demo model server and traffic.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the demo story.")
@click.pass_obj
def demo(state: State, directory: Path | None, no_tui: bool, serve: bool, seed: int) -> None:
    """Build the demo workspace in DIRECTORY (default: the user data dir) and open it."""
    from console.logs import setup_logging

    setup_logging(verbose=state.verbose)
    try:
        from console.demo.run import DemoError, default_demo_dir, run_demo, serve_demo
    except ImportError as exc:
        fail(f"the demo is not available in this build: {exc}", EXIT_USAGE)
    target = directory or default_demo_dir()

    def tui(path: Path) -> int:
        sub = State(path, None, state.theme, state.read_only, state.verbose)
        return open_tui(sub)

    try:
        if serve:
            raise SystemExit(serve_demo(target))
        raise SystemExit(run_demo(target, seed=seed, no_tui=no_tui, open_tui=tui))
    except DemoError as exc:
        fail(str(exc), EXIT_USAGE)


def _register_subcommands() -> None:
    from console.cli import live, login, release

    release.register(cli)
    login.register(cli)
    live.register(cli)


_register_subcommands()


def main() -> None:
    try:
        cli(prog_name="cd4ml-console")
    except KeyboardInterrupt:
        sys.exit(130)
