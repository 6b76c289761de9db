"""Live health subcommands: ``health`` (a verdict per stage) and ``watch`` (a version after a
change). Exit codes: 0 ok (healthy), 1 no verdict (a backend failed, too little traffic), 4
breach. Only click is imported at module level; ``console.cli.group`` calls :func:`register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from console.cli.runtime import emit_json, fail, open_ws, run_async

if TYPE_CHECKING:
    from console.cli.runtime import State
    from console.services.health import StageHealth
    from console.services.watch import WatchState

EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, EXIT_BREACH = 0, 1, 2, 4
HEALTH_SCHEMA = "cd4ml-console/health/v1"
WATCH_SCHEMA = "cd4ml-console/watch/v1"


def register(cli: click.Group) -> None:
    for command in (health, watch):
        if command.name not in cli.commands:
            cli.add_command(command)


def _duration(text: str | None, option: str) -> float | None:
    from console.config.model import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def verdict_line(h: StageHealth) -> str:
    """'price-recommender  staging     v1.3.0   BREACH   p95 745 ms > 250 ms; …'."""
    word = h.verdict.upper() if h.verdict == "breach" else h.verdict
    return f"{h.model:<22} {h.stage:<11} {h.version or '-':<9} {word:<9} {'; '.join(h.reasons)}"


def health_exit(verdicts: list[StageHealth], problems: list[str]) -> int:
    if any(h.verdict == "breach" for h in verdicts):
        return EXIT_BREACH
    if problems or any(h.verdict == "unknown" for h in verdicts):
        return EXIT_UNKNOWN
    return EXIT_OK


@click.command(short_help="A verdict per stage from live figures and the SLOs.")
@click.argument("model", required=False)
@click.option("--stage", help="Only this stage (default: production, and every stage with data).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (docs/cli.md).")
@click.pass_obj
def health(state: State, model: str | None, stage: str | None, as_json: bool) -> None:
    """The health verdict of every stage with live data (of MODEL): ok, degraded, breach or
    unknown, with the reason in numbers, over the SLO window ([slo] in the config).

    Exits 0 when every verdict is ok or degraded, 4 on a breach, 1 when a verdict could not be
    reached (the metrics backend failed, or too little traffic).
    """

    ws = open_ws(state)
    if stage is not None and stage not in ws.config.stages:
        fail(f"unknown stage {stage!r}; stages are {', '.join(ws.config.stages)}", EXIT_USAGE)

    async def go() -> tuple[list[StageHealth], list[str], bool]:
        from console.services.health import HealthService
        from console.services.overview import OverviewService

        async with ws:
            overview = OverviewService(ws)
            models, listing = await overview.list_models()
            if model is not None:
                models = [m for m in models if m.name == model]
            problems = [f"registry: {listing.error}"] if listing.error else []
            checker = HealthService(overview)
            out: list[StageHealth] = []
            for m in models:
                view = await overview.model_view(m, with_details=False, with_health=False)
                if view.errors.get("registry"):
                    problems.append(f"{m.name}: registry: {view.errors['registry']}")
                serving = {a.stage: a.version for a in view.stages}
                out += await checker.model(m.name, serving, stages=(stage,) if stage else ())
            return out, problems, bool(models)

    verdicts, problems, found = run_async(go)
    if model is not None and not found:
        fail(f"no model named {model!r} in {ws.label}", EXIT_UNKNOWN)
    code = health_exit(verdicts, problems)
    if as_json:
        emit_json(
            {
                "schema": HEALTH_SCHEMA,
                "workspace": ws.label,
                "exit_code": code,
                "stages": [{"model": h.model, **h.doc()} for h in verdicts],
                "errors": problems,
            }
        )
    else:
        for h in verdicts:
            click.echo(verdict_line(h))
        if not verdicts:
            click.echo("no stage holds a version: nothing to judge")
        for p in problems:
            click.echo(f"! {p}", err=True)
    raise SystemExit(code)


@click.command(short_help="Watch a version after a change; exit 4 on a breach.")
@click.argument("model")
@click.option("--stage", help="The stage to watch (default: production).")
@click.option("--version", "version", help="The version (default: the stage's now).")
@click.option("--for", "for_", metavar="DURATION", help="How long, e.g. 10m (default: SLO window).")
@click.option("--interval", default="15s", show_default=True, help="Time between checks.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document at the end.")
@click.pass_obj
def watch(
    state: State,
    model: str,
    stage: str | None,
    version: str | None,
    for_: str | None,
    interval: str,
    as_json: bool,
) -> None:
    """Watch MODEL's stage for a while after a promotion or rollback: only the watched
    version's requests since the watch began are judged, against the SLOs. Stops at the first
    breach (exit 4: `cd4ml-console rollback MODEL` next); "healthy after 10 min" exits 0; no
    verdict at the end (too little traffic, metrics down) exits 1.
    """

    ws = open_ws(state)
    stage = stage or ws.config.prod_stage
    if stage not in ws.config.stages:
        fail(f"unknown stage {stage!r}; stages are {', '.join(ws.config.stages)}", EXIT_USAGE)
    every = _duration(interval, "--interval") or 15.0
    duration = _duration(for_, "--for")

    async def go() -> WatchState | str:
        import asyncio
        from datetime import UTC, datetime

        from console.services.health import HealthService
        from console.services.overview import OverviewService
        from console.services.watch import describe
        from console.services.watch import watch as run_watch

        async with ws:
            overview = OverviewService(ws)
            target = version
            if target is None:
                view = await overview.model_view(model, with_details=False, with_health=False)
                target = view.stage_version(stage)
                if target is None:
                    why = view.errors.get("registry") or f"{stage} of {model} holds no version"
                    return why
            seconds = duration if duration is not None else ws.config.slo_for(model).window_seconds

            def show(s: WatchState) -> None:
                if not as_json:
                    click.echo(describe(s))

            return await run_watch(
                HealthService(overview),
                model,
                stage,
                target,
                duration=seconds,
                interval=every,
                clock=lambda: datetime.now(UTC),
                sleep=asyncio.sleep,
                on_update=show,
            )

    result = run_async(go)
    if isinstance(result, str):
        fail(result, EXIT_UNKNOWN)
    if as_json:
        h = result.health
        emit_json(
            {
                "schema": WATCH_SCHEMA,
                "model": result.model,
                "stage": result.stage,
                "version": result.version,
                "outcome": result.outcome,
                "message": result.message,
                "elapsed_seconds": result.elapsed,
                "exit_code": result.exit_code,
                "health": h.doc() if h is not None else None,
            }
        )
    elif result.outcome == "breach":
        click.echo(f"next: cd4ml-console rollback {model} --stage {stage} --reason REASON")
    raise SystemExit(result.exit_code)
