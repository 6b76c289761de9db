"""Export of the audit log to JSON Lines (verifiable offline) and CSV (for spreadsheets)."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Literal, TextIO

from console.audit.chain import (
    CHAIN_FIELDS,
    Anchor,
    EncodingError,
    StoredRecord,
    VerifyResult,
    canonical_bytes,
    event_fields,
    verify_chain,
)
from console.domain import AuditEvent
from console.ports import AuditStore, AuditUnavailable

Format = Literal["jsonl", "csv"]
COLUMNS: tuple[str, ...] = (*CHAIN_FIELDS, "hash")
"""CSV header: every field in the order of the domain model, the hash last."""
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def json_line(event: AuditEvent) -> str:
    """One JSON Lines row: the canonical encoding with ``hash`` added (keys still sorted)."""
    fields = event_fields(event)
    fields["hash"] = event.hash
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write one line per event; returns how many were written."""
    n = 0
    for event in events:
        out.write(json_line(event) + "\n")
        n += 1
    return n


def csv_row(event: AuditEvent, *, spreadsheet_safe: bool = False) -> list[str]:
    """One CSV row in :data:`COLUMNS` order; ``details`` as canonical JSON text."""
    fields = event_fields(event)
    fields["hash"] = event.hash
    fields["details"] = json.dumps(
        fields["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    row = [str(fields[c]) for c in COLUMNS]
    if spreadsheet_safe:
        row = ["'" + v if v.startswith(_FORMULA_START) else v for v in row]
    return row


def write_csv(
    events: Iterable[AuditEvent],
    out: TextIO,
    *,
    header: bool = True,
    spreadsheet_safe: bool = False,
) -> int:
    """Write a header and one row per event; returns how many events were written.

    ``spreadsheet_safe`` prefixes ``'`` to cells a spreadsheet would run as a formula.
    """
    writer = csv.writer(out)
    if header:
        writer.writerow(COLUMNS)
    n = 0
    for event in events:
        writer.writerow(csv_row(event, spreadsheet_safe=spreadsheet_safe))
        n += 1
    return n


async def iter_store(
    store: AuditStore, *, model: str | None = None, page: int = 1000
) -> AsyncIterator[list[AuditEvent]]:
    """Pages of the store's events in seq order, so a long log is never held in memory."""
    since = 0
    while True:
        batch = list(await store.events(model=model, since_seq=since, limit=page))
        if not batch:
            return
        yield batch
        since = batch[-1].seq
        if len(batch) < page:
            return


async def export_store(
    store: AuditStore,
    out: TextIO,
    fmt: Format = "jsonl",
    *,
    model: str | None = None,
    spreadsheet_safe: bool = False,
) -> int:
    """Export every event of ``store`` (or of one model) to ``out``; returns the count."""
    n = 0
    async for batch in iter_store(store, model=model):
        if fmt == "jsonl":
            n += write_jsonl(batch, out)
        else:
            n += write_csv(batch, out, header=n == 0, spreadsheet_safe=spreadsheet_safe)
    if fmt == "csv" and n == 0:
        write_csv((), out)
    return n


def _records(lines: Iterable[str]) -> Iterator[StoredRecord]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            stored_hash = data.pop("hash", None)
            seq = data.get("seq")
            record = canonical_bytes(data)
        except (ValueError, EncodingError) as exc:
            # An unreadable line still takes its place in the chain, and fails there.
            yield StoredRecord(seq=None, hash=None, record=None, error=f"line {number}: {exc}")
            return
        yield StoredRecord(seq=seq, hash=stored_hash, record=record)


def verify_jsonl(lines: Iterable[str], *, anchors: Iterable[Anchor] | None = None) -> VerifyResult:
    """Verify a full JSON Lines export (from seq 1) offline, optionally against anchors.

    Each line is re-encoded canonically, so changes of layout alone are not reported; any
    change of a value is.
    """
    return verify_chain(_records(lines), anchors=anchors)


class ExportMixin:
    """``export``/``export_jsonl``/``export_csv`` for any AuditStore (SQLite, PostgreSQL, ...)."""

    name: str

    async def export(
        self,
        target: Path | str | TextIO,
        fmt: Format = "jsonl",
        *,
        model: str | None = None,
        spreadsheet_safe: bool = False,
    ) -> int:
        """Write the log (or one model's events) as JSON Lines or CSV; returns the count."""
        store: AuditStore = self  # type: ignore[assignment]
        if not isinstance(target, Path | str):
            return await export_store(
                store, target, fmt, model=model, spreadsheet_safe=spreadsheet_safe
            )
        try:
            with open(target, "w", encoding="utf-8", newline="") as out:
                return await export_store(
                    store, out, fmt, model=model, spreadsheet_safe=spreadsheet_safe
                )
        except OSError as exc:
            raise AuditUnavailable(
                f"can not write the export {target}: {exc.strerror}", backend=self.name
            ) from None

    async def export_jsonl(self, target: Path | str | TextIO, *, model: str | None = None) -> int:
        """JSON Lines export, one canonical event per line (verifiable with verify_jsonl)."""
        return await self.export(target, "jsonl", model=model)

    async def export_csv(
        self,
        target: Path | str | TextIO,
        *,
        model: str | None = None,
        spreadsheet_safe: bool = False,
    ) -> int:
        """CSV export with a header row; details as JSON text."""
        return await self.export(target, "csv", model=model, spreadsheet_safe=spreadsheet_safe)
