"""`audit` and `audit verify`: list or export the log, and check it against its git anchor."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from console.audit.chain import Problem, VerifyResult
from console.domain import AuditEvent
from console.domain.models import Frozen
from console.domain.text import escape_controls
from console.logs import cut, mask
from console.ports import AuditStore
from console.services.release.results import ReleaseError
from console.services.workspace import Workspace

if TYPE_CHECKING:
    from console.audit.anchor import Anchor


def event_line(e: AuditEvent) -> str:
    """One audit record as `audit` prints it: masked, cut, control characters escaped."""
    op = e.details.get("op")
    action = f"{e.action}({op})" if op else e.action
    move = f"{e.before or '-'}->{e.after or '-'}" if (e.before or e.after) else ""
    where = " ".join(x for x in (e.model, e.version, e.stage) if x)
    line = (
        f"{e.seq:>6} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<10} {action:<18} {where} {move} "
        f"{e.result} {e.request_id} {cut(mask(e.reason), 60)}"
    ).rstrip()
    return escape_controls(line)  # the record keeps its bytes; the terminal gets them escaped


def _store(ws: Workspace) -> AuditStore | None:
    store = ws.audit
    if store is None:
        problem = ws.problems.get("audit") or "no audit backend is configured"
        print(f"audit: {problem}", file=sys.stderr)
    return store


class _Escaped:
    """A terminal seen through :func:`escape_controls` (line breaks kept): an export keeps
    every byte of the log, except that what reaches a person's screen can not drive it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(escape_controls(text.replace("\r\n", "\n"), lines=True))


def _screen_safe(out: TextIO) -> TextIO:
    """``out``, escaped when it is a terminal (a file or a pipe gets the exact records)."""
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return cast(TextIO, _Escaped(out)) if tty else out


async def print_events(ws: Workspace, model: str | None, fmt: str, limit: int) -> int:
    """Text: the newest ``limit`` events; json/csv: every event, streamed page by page."""
    from console.audit.export import iter_store, json_line, write_csv

    store = _store(ws)
    if store is None:
        return 1
    out = _screen_safe(sys.stdout)
    try:
        if fmt == "text":
            try:
                events = list(await store.events(model=model, limit=limit, tail=True))  # type: ignore[call-arg]
            except TypeError:  # a store without ``tail``
                events = list(await store.events(model=model))[-limit:]
            for e in events:
                out.write(event_line(e) + "\n")
            if not events:
                out.write(
                    "the audit log is empty\n" if model is None else f"no events for {model}\n"
                )
            return 0
        if fmt == "csv":
            n = 0
            async for batch in iter_store(store, model=model):
                n += write_csv(batch, out, header=n == 0)
            if n == 0:
                write_csv((), out)
            return 0
        head = json.dumps({"schema": "cd4ml-console/audit/v1", "model": model})[:-1]
        out.write(head + ', "events": [')
        first = True
        async for batch in iter_store(store, model=model):
            for e in batch:
                out.write(("\n" if first else ",\n") + json_line(e))
                first = False
        out.write("\n]}\n")
        return 0
    except BrokenPipeError:  # the reader went away (`audit | head`): the CLI ends quietly
        raise
    except Exception as exc:  # BackendError or a damaged record: say so, never a traceback
        print(f"audit: {exc}", file=sys.stderr)
        return 1


async def verify_log(ws: Workspace, *, as_json: bool = False) -> int:
    """Verify the chain and every anchor; exit 1 naming the first bad record."""
    from console.audit.anchor import ANCHOR_REF

    try:
        check = await check_log(ws)
    except ReleaseError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    result, note = check.result, check.anchor_note
    if as_json:
        doc = {
            "schema": "cd4ml-console/audit-verify/v1",
            "ref": ANCHOR_REF,
            **result.model_dump(mode="json"),
            "anchor_note": note or None,
        }
        print(json.dumps(doc, indent=2))
        return 0 if result.ok else 1
    if note:
        print(f"warning: {note}", file=sys.stderr)
    if not result.ok:
        problem = result.problem.value if result.problem else "bad"
        where = (
            f"first bad record is seq {result.first_bad_seq} ({problem})"
            if result.first_bad_seq is not None
            else problem.replace("_", " ")
        )
        print(f"FAILED: {where}: {result.reason}")
        return 1
    head = f"head {result.head_hash[:16]}" if result.head_hash else "empty"
    print(f"ok: {result.count} records, {head}" + (f"; {result.note}" if result.note else ""))
    return 0


# -- for the TUI: the same reads, returned instead of printed ----------------------------------


class AuditLog(Frozen):
    """The newest events of the log (oldest first), and how many records the log holds."""

    events: tuple[AuditEvent, ...] = ()
    total: int = 0
    store: str = ""

    @property
    def truncated(self) -> bool:
        return self.total > len(self.events)


class AuditCheck(Frozen):
    """The verification of the chain and its anchors, and why the anchor was unreadable."""

    result: VerifyResult
    anchor_note: str = ""


def _store_or_error(ws: Workspace) -> AuditStore:
    store = ws.audit
    if store is None:
        problem = ws.problems.get("audit") or "no audit backend is configured"
        raise ReleaseError(f"audit: {problem}")
    return store


async def read_log(ws: Workspace, *, model: str | None = None, limit: int = 5000) -> AuditLog:
    """The newest ``limit`` events (of ``model``); ReleaseError in words when unreadable."""
    import asyncio

    store = _store_or_error(ws)
    timeout = max(4 * ws.config.timeout_seconds, 20.0)
    try:
        try:
            events = list(
                await asyncio.wait_for(store.events(model=model, limit=limit, tail=True), timeout)  # type: ignore[call-arg]
            )
        except TypeError:  # a store without ``tail``
            events = list(await asyncio.wait_for(store.events(model=model), timeout))[-limit:]
        total = len(events)
        if model is None and len(events) >= limit:
            total = max(total, int((await asyncio.wait_for(store.head(), timeout))[0]))
    except TimeoutError:
        raise ReleaseError(f"audit: {store.name} did not answer within {timeout:g}s") from None
    except Exception as exc:  # BackendError or a damaged record: say so
        raise ReleaseError(f"audit: {exc}") from None
    return AuditLog(events=tuple(events), total=total, store=str(getattr(store, "name", "")))


async def check_log(ws: Workspace) -> AuditCheck:
    """Verify the chain and every anchor (as `audit verify` does); ReleaseError when the
    store can not verify itself or fails."""
    from console.audit.anchor import in_git_repo, read_anchor_history

    store = _store_or_error(ws)
    verify = getattr(store, "verify", None)
    if not callable(verify):
        raise ReleaseError(f"audit: the {store.name} store can not verify itself")
    root, unreadable = ws.config.root, ""
    anchors: list[Anchor] = []
    if in_git_repo(root):  # else nowhere to anchor: verified as unanchored, unless it was
        try:
            anchors = await read_anchor_history(root, timeout=ws.config.timeout_seconds)
        except Exception as exc:  # git missing, the ref at a blob or at a foreign commit
            unreadable = f"the anchor in {root} can not be read: {exc}"
    try:
        result = await verify(anchors)
    except Exception as exc:
        raise ReleaseError(f"audit verify: {exc}") from None
    if unreadable and result.ok:  # an anchor that exists but can not be read proves nothing
        result = result.model_copy(
            update={
                "ok": False,
                "problem": Problem.ANCHOR_UNREADABLE,
                "reason": unreadable,
                "note": "",
            }
        )
    elif result.ok and result.remembered and in_git_repo(root):
        result = await _held_by_the_ref(root, result, anchors, ws.config.timeout_seconds)
    return AuditCheck(result=result)


async def _held_by_the_ref(
    root: Path, result: VerifyResult, anchors: list[Anchor], timeout: float
) -> VerifyResult:
    """Fail ``result`` when a record remembers an anchor of this repository that the ref's
    history does not hold (the ref was removed or moved back); another clone's anchors (a
    shared store) are not this ref's to hold."""
    from console.audit.anchor import existing_commits

    missing = set(result.remembered) - {a.source for a in anchors}
    ours = await existing_commits(root, missing, timeout)
    if not ours:
        return result
    count, seq = max(result.remembered[c] for c in ours)
    tip = max((a.count for a in anchors), default=None)
    now = f"the anchor's history ends at {tip} records" if tip else "there is no anchor"
    return result.model_copy(
        update={
            "ok": False,
            "problem": Problem.ANCHOR_MISSING,
            "first_bad_seq": seq,
            "note": "",
            "reason": f"seq {seq} was written under an anchor of {count} records that the "
            f"ref no longer holds ({now}): records may have been removed, or the anchor moved "
            "back",
        }
    )
