"""Release subcommands: compare, promote, approve, reject, rollback, requests, audit, report.

Only click is imported at module level (``--help`` stays fast). Exit codes: 0 done, 1 a backend
failed (the message says what is and is not changed), 2 bad usage, 3 refused (policy, role,
four-eyes, conflict; one line says why). ``console.cli.group`` calls :func:`register`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import click

from console.cli.paths import as_path
from console.cli.runtime import emit_json, open_ws, run_async

if TYPE_CHECKING:
    from pathlib import Path

    from console.cli.runtime import State
    from console.services.release import (
        ActionResult,
        Plan,
        Reconciled,
        Refused,
        ReleaseError,
        ReleaseService,
    )
    from console.services.release.compare import Comparison
    from console.services.release.request_fold import RequestView
    from console.services.workspace import Workspace

EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
reason_option = click.option(
    "--reason", default="", help="Why (required; recorded in the audit log)."
)


def _need_reason(action: str, reason: str) -> None:
    """A change is recorded with why: refuse it (exit 2) without a reason."""
    if not reason.strip():
        raise click.UsageError(f"{action} needs --reason TEXT (it is recorded in the audit log)")


def _say(lines: str | list[str], *, err: bool = False) -> None:
    """Print text lines; a control character in them (an audit record keeps what it was
    given) is shown escaped, never sent raw to the terminal."""
    from console.domain.text import escape_controls

    text = "\n".join([lines] if isinstance(lines, str) else lines)
    click.echo(escape_controls(text, lines=True), err=err)


def _service(ws: Workspace, state: State) -> ReleaseService:
    from console.services.release import ReleaseService

    return ReleaseService(ws, read_only=bool(state.read_only))


def _act(
    state: State,
    action: str,
    model: str,
    as_json: bool,
    make: Callable[[ReleaseService], Awaitable[ActionResult | Plan]],
    *,
    reconcile: bool = True,
) -> None:
    """Run one release action: reconcile open intents first, then ``make(service)``; print
    the result (text or JSON) and exit with the documented code."""
    from console.cli import release_views as v
    from console.services.release import ActionResult, Refused, ReleaseError
    from console.services.release.results import reconciled_lines

    if state.read_only and action in ("promote", "approve", "reject", "rollback"):
        exc = Refused(f"{action} refused: the console is in read-only mode", kind="read_only")
        if as_json:
            emit_json(v.refusal_doc(action, model, exc, exc.message, []))
        _say(exc.message, err=True)
        raise SystemExit(EXIT_REFUSED)
    ws = open_ws(state)

    async def go() -> tuple[list[Reconciled], ActionResult | Plan | Refused | ReleaseError]:
        async with ws:
            svc = _service(ws, state)
            done = await svc.reconcile() if reconcile else []
            try:
                return done, await make(svc)
            except (Refused, ReleaseError) as exc:
                return done, exc

    reconciled, result = run_async(go)
    if reconciled:
        _say(reconciled_lines(reconciled), err=True)
    if isinstance(result, (Refused, ReleaseError)):
        refused = result if isinstance(result, Refused) else None
        if as_json:
            emit_json(v.refusal_doc(action, model, refused, result.message, reconciled))
        _say(result.message, err=True)
        nxt = getattr(result, "next_command", "") or _flag_hint(refused)
        if nxt:
            _say(f"next: {nxt}", err=True)
        raise SystemExit(refused.exit_code if refused is not None else EXIT_FAILED)
    if isinstance(result, ActionResult):
        if as_json:
            emit_json(v.action_doc(result, reconciled))
        else:
            _say(v.result_lines(result))
        raise SystemExit(result.exit_code)
    if as_json:
        emit_json(
            {
                "schema": "cd4ml-console/release-plan/v1",
                "plan": v.plan_doc(result),
                "reconciled": v.reconciled_docs(reconciled),
            }
        )
    else:
        _say(v.plan_lines(result))


def _flag_hint(refused: Refused | None) -> str:
    """The flag that answers a refusal, where one does: a schema change not acknowledged."""
    gates = getattr(refused, "gates", ()) if refused is not None else ()
    if any(g.gate == "schema" and not g.passed and g.threshold == "ack" for g in gates):
        return "look at the schema change, then run the command again with --ack-schema-change"
    return ""


def register(cli: click.Group) -> None:
    """Add the release subcommands to ``cli`` (idempotent)."""
    for command in (compare, promote, approve, reject, rollback, requests, audit, report):
        if command.name not in cli.commands:
            cli.add_command(command)


@click.command()
@click.argument("model")
@click.argument("versions", nargs=-1, required=True)
@click.option("--to", "stage", help="Compare against this stage's version (default: production).")
@json_option
@click.pass_obj
def compare(
    state: State, model: str, versions: tuple[str, ...], stage: str | None, as_json: bool
) -> None:
    """Compare candidate VERSIONS of MODEL with the version in a stage: metric deltas
    (direction-aware), code, params, schema, sampling, CI, and the metric trend."""
    from console.cli.release_views import comparison_lines
    from console.services.release import Refused
    from console.services.release.compare import compare as run_compare
    from console.services.release.compare import comparison_doc

    ws = open_ws(state)

    async def go() -> Comparison | Refused:
        async with ws:
            try:
                return await run_compare(ws, model, list(versions), stage=stage)
            except Refused as exc:
                return exc

    result = run_async(go)
    if isinstance(result, Refused):
        _say(result.message, err=True)
        raise SystemExit(result.exit_code)
    if as_json:
        emit_json(comparison_doc(result))
    else:
        _say(comparison_lines(result))
    raise SystemExit(EXIT_FAILED if result.errors else 0)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--to", "stage", required=True, help="The stage to promote into.")
@reason_option
@click.option("--ack-schema-change", is_flag=True, help="Acknowledge a data schema change.")
@click.option(
    "--ack-rolled-back", is_flag=True, help="Acknowledge that VERSION was rolled back before."
)
@click.option("--override-window", is_flag=True, help="Admin: act outside the change window.")
@click.option("--dry-run", is_flag=True, help="Show the plan and the gates; change nothing.")
@json_option
@click.pass_obj
def promote(
    state: State,
    model: str,
    version: str,
    stage: str,
    reason: str,
    ack_schema_change: bool,
    ack_rolled_back: bool,
    override_window: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Request promoting VERSION of MODEL to a stage; it executes once gates pass and enough
    others approved. Run again when the stage already points at VERSION to finish its deploy."""
    if dry_run:
        _act(
            state,
            "plan",
            model,
            as_json,
            lambda svc: svc.plan_promotion(
                model,
                version,
                stage,
                ack_schema_change=ack_schema_change,
                override_window=override_window,
                ack_rolled_back=ack_rolled_back,
            ),
            reconcile=False,
        )
        return
    _need_reason("promote", reason)
    _act(
        state,
        "promote",
        model,
        as_json,
        lambda svc: svc.promote(
            model,
            version,
            stage,
            reason=reason,
            ack_schema_change=ack_schema_change,
            override_window=override_window,
            ack_rolled_back=ack_rolled_back,
        ),
    )


def _decide(kind: str) -> click.Command:
    @click.command(name=kind)
    @click.argument("model")
    @click.argument("version")
    @click.option("--to", "stage", required=True, help="The stage of the request.")
    @click.option("--comment", default="", help="Recorded with the decision.")
    @json_option
    @click.pass_obj
    def decide(
        state: State, model: str, version: str, stage: str, comment: str, as_json: bool
    ) -> None:
        def make(svc: ReleaseService) -> Awaitable[ActionResult]:
            return getattr(svc, kind)(model, version, stage, comment=comment)

        _act(state, kind, model, as_json, make)

    decide.help = (
        "Approve the pending request to promote VERSION of MODEL (not its author or requester); "
        "the last approval needed executes it."
        if kind == "approve"
        else "Reject the pending request to promote VERSION of MODEL (the requester: withdraw it)."
    )
    return decide


approve = _decide("approve")
reject = _decide("reject")


@click.command()
@click.argument("model")
@click.option("--to", "to_version", help="Version to roll back to (default: the previous one).")
@click.option("--stage", help="Stage to roll back (default: production).")
@reason_option
@click.option("--yes", is_flag=True, help="Do not ask for the typed confirmation.")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@json_option
@click.pass_obj
def rollback(
    state: State,
    model: str,
    to_version: str | None,
    stage: str | None,
    reason: str,
    yes: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Roll MODEL's stage back to its previous version (from the stage history), then deploy."""
    if dry_run:
        _act(
            state,
            "plan",
            model,
            as_json,
            lambda svc: svc.plan_rollback(model, stage=stage, to_version=to_version),
            reconcile=False,
        )
        return
    _need_reason("rollback", reason)

    async def make(svc: ReleaseService) -> ActionResult:
        from console.cli.release_views import plan_lines

        plan = await svc.plan_rollback(model, stage=stage, to_version=to_version)
        typed = model
        if not yes:
            _say(plan_lines(plan), err=True)
            try:
                if plan.confirm_model_name:
                    typed = click.prompt(f"Type the model name ({model}) to confirm", err=True)
                elif not click.confirm("Roll back?", err=True):
                    typed = ""
            except click.Abort:
                typed = ""
            if typed != model:
                from console.services.release import Refused

                raise Refused(
                    "rollback not confirmed; nothing was changed (or pass --yes)", kind="usage"
                )
        return await svc.rollback(
            model, reason=reason, confirmation=typed, stage=plan.stage, to_version=plan.version
        )

    _act(state, "rollback", model, as_json, make)


@click.command()
@click.argument("model", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also requests that are closed.")
@json_option
@click.pass_obj
def requests(state: State, model: str | None, show_all: bool, as_json: bool) -> None:
    """Promotion and rollback requests (pending ones by default), from the audit log."""
    from console.logs import cut, mask
    from console.services.release import ReleaseError
    from console.services.release.request_fold import request_doc
    from console.services.release.results import reconciled_lines

    ws = open_ws(state)

    async def go() -> list[RequestView] | ReleaseError:
        async with ws:
            svc = _service(ws, state)
            try:
                done = await svc.reconcile()
                if done:
                    _say(reconciled_lines(done), err=True)
                return await (svc.request_views(model) if show_all else svc.pending(model))
            except ReleaseError as exc:
                return exc

    views = run_async(go)
    if isinstance(views, ReleaseError):
        _say(views.message, err=True)
        raise SystemExit(EXIT_FAILED)
    docs = [request_doc(x) for x in views]
    if as_json:
        emit_json({"schema": "cd4ml-console/requests/v1", "requests": docs})
        return
    for d in docs:
        got = sum(1 for a in d["approvals"] if a["decision"] == "approve")
        _say(
            f"{d['id']}  {d['state']:<9} {d['kind']:<8} {d['model']} {d['from_version'] or '-'}"
            f" -> {d['version']} to {d['stage']}  by {d['requested_by']}  approvals {got}"
            f"  {d['created_at'][:16]}  {cut(mask(d['reason']), 60)}"
        )
    if not docs:
        click.echo("no pending requests" if not show_all else "no requests")


@click.command()
@click.argument("model", required=False)
@click.option("--model", "model_opt", help="A model literally named 'verify'.")
@click.option("--json", "as_json", is_flag=True, help="All events as one JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="All events as CSV.")
@click.option("--limit", type=int, default=50, show_default=True, help="Newest events (text).")
@click.option("--reset", is_flag=True, help="`audit anchor`: re-anchor the log (admins).")
@click.option("--reason", default="", help="Why (`audit anchor --reset`).")
@click.pass_obj
def audit(
    state: State,
    model: str | None,
    model_opt: str | None,
    as_json: bool,
    as_csv: bool,
    limit: int,
    reset: bool,
    reason: str,
) -> None:
    """The audit log (of MODEL): text, --json or --csv.

    `audit verify` checks every record's hash, the links and the git anchor, and names the
    first bad record (exit 1); without an anchor it says since when the log is unanchored.
    `audit anchor` says whether the log is the anchored one; after investigating a log that is
    not, an admin re-anchors it with `audit anchor --reset --reason TEXT` (recorded).
    """
    from console.services.release import audit_view

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    check = model == "verify" and model_opt is None
    if model == "anchor" and model_opt is None:
        _anchor(state, reset=reset, reason=reason, as_json=as_json)
        return
    if reset:
        raise click.UsageError("--reset goes with `audit anchor`")
    ws = open_ws(state)

    async def go() -> int:
        async with ws:
            if check:
                return await audit_view.verify_log(ws, as_json=as_json)
            fmt = "json" if as_json else "csv" if as_csv else "text"
            return await audit_view.print_events(ws, model_opt or model, fmt, limit)

    raise SystemExit(run_async(go))


def _anchor(state: State, *, reset: bool, reason: str, as_json: bool) -> None:
    """`audit anchor`: say whether the log is the anchored one; with --reset, re-anchor it."""
    from console.services.release import anchoring

    if reset:
        _act(
            state,
            "re-anchor",
            "",
            as_json,
            lambda svc: anchoring.reset_anchor(svc, reason),
            reconcile=False,
        )
        return

    ws = open_ws(state)

    async def go() -> tuple[bool, str]:
        async with ws:
            return await anchoring.anchor_state(_service(ws, state))

    proved, text = run_async(go)
    if as_json:
        emit_json({"schema": "cd4ml-console/audit-anchor/v1", "proved": proved, "state": text})
    else:
        click.echo(("ok: " if proved else "FAILED: ") + text)
    raise SystemExit(0 if proved else EXIT_FAILED)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--to", "stage", help="Stage (default: the request's, else production).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), callback=as_path, help="File.")
@click.pass_obj
def report(state: State, model: str, version: str, stage: str | None, output: Path | None) -> None:
    """Write the Markdown evidence record of VERSION for a change board."""
    from console.services.release import Refused, ReleaseError
    from console.services.release.report import evidence_report

    ws = open_ws(state)

    async def go() -> str | Refused | ReleaseError:
        async with ws:
            try:
                return await evidence_report(_service(ws, state), model, version, stage=stage)
            except (Refused, ReleaseError) as exc:
                return exc

    text = run_async(go)
    if not isinstance(text, str):
        _say(text.message, err=True)
        raise SystemExit(getattr(text, "exit_code", EXIT_FAILED))
    if output is None:
        sys.stdout.write(text)
        return
    from console.services.release.report import ReportFileError, write_report

    try:
        write_report(output, text)
    except ReportFileError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(EXIT_FAILED) from None
    click.echo(f"wrote {output}", err=True)
