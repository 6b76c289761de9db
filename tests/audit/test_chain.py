"""The canonical encoding, hashing and chain verification, independent of any store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum

import pytest
from audit_helpers import T0, make_event

from console.audit import (
    CHAIN_FIELDS,
    Anchor,
    EncodingError,
    Problem,
    StoredRecord,
    canonical_bytes,
    compute_hash,
    decode_record,
    seal,
    verify_chain,
    verify_jsonl,
    write_csv,
    write_jsonl,
)
from console.audit.export import COLUMNS
from console.domain import AuditEvent


def build(n: int) -> list[tuple[AuditEvent, bytes]]:
    out: list[tuple[AuditEvent, bytes]] = []
    prev = ""
    for i in range(n):
        event, record = seal(make_event(i), i + 1, prev)
        out.append((event, record))
        prev = event.hash
    return out


def records(n: int) -> list[StoredRecord]:
    return [
        StoredRecord(e.seq, e.hash, r, {"model": e.model, "request_id": e.request_id})
        for e, r in build(n)
    ]


def test_chain_fields_cover_every_field_of_the_event_but_the_hash() -> None:
    # If AuditEvent gains a field, it must be hashed: this fails loudly instead.
    assert set(CHAIN_FIELDS) == set(AuditEvent.model_fields) - {"hash"}


def test_canonical_encoding_is_sorted_compact_utf8_with_z_times() -> None:
    event = make_event(0, reason="naïve → ok", details={"b": 1, "a": {"y": 2, "x": [1.5, None]}})
    data = canonical_bytes(event)
    text = data.decode("utf-8")
    assert " " not in text.replace("naïve → ok", "").replace("alice from 10.0.0.7", "")
    assert "naïve → ok" in text  # not \\u-escaped
    assert '"at":"2024-05-01T09:30:00.123456Z"' in text
    assert text.index('"a":{"x":[1.5,null],"y":2}') < text.index('"b":1')
    keys = list(json.loads(text))
    assert keys == sorted(keys) == sorted(CHAIN_FIELDS)
    assert '"hash"' not in text


def test_golden_hash_pins_the_format() -> None:
    # Changing this value means old logs no longer verify: bump chain.FORMAT and migrate.
    event = make_event(0, at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), seq=1)
    assert canonical_bytes(event) == (
        b'{"action":"promote.intent","actor":"alice from 10.0.0.7","after":"v1.0.0",'
        b'"at":"2024-01-02T03:04:05.000000Z","before":"v1.0.0","details":{"approvers":["bob"],'
        b'"gates":{"auc":0.91,"ci":"green"}},"model":"churn","prev_hash":"",'
        b'"reason":"better AUC (#0) \xe2\x80\x94 approved by bob","request_id":"req-0000",'
        b'"result":"ok","seq":1,"stage":"prod","version":"v1.0.0"}'
    )
    assert compute_hash(event) == hashlib.sha256(canonical_bytes(event)).hexdigest()


def test_times_are_normalised_to_utc_and_naive_means_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    aware = make_event(0, at=datetime(2024, 1, 1, 14, 0, tzinfo=plus2))
    naive = make_event(0, at=datetime(2024, 1, 1, 12, 0))
    assert canonical_bytes(aware) == canonical_bytes(naive)
    assert b'"at":"2024-01-01T12:00:00.000000Z"' in canonical_bytes(aware)


@pytest.mark.parametrize(
    "field,value",
    [
        ("seq", 2),
        ("at", T0 + timedelta(microseconds=1)),
        ("actor", "mallory"),
        ("action", "rollback"),
        ("model", "other"),
        ("version", "v9"),
        ("stage", "staging"),
        ("before", "x"),
        ("after", "y"),
        ("reason", "because"),
        ("result", "failed"),
        ("request_id", "req-x"),
        ("details", {"gates": {}}),
        ("prev_hash", "0" * 64),
    ],
)
def test_every_field_changes_the_hash(field: str, value: object) -> None:
    base = make_event(0, seq=1)
    assert compute_hash(base) != compute_hash(base.model_copy(update={field: value}))


def test_the_hash_field_itself_is_not_hashed() -> None:
    base = make_event(0, seq=1)
    assert compute_hash(base) == compute_hash(base.model_copy(update={"hash": "anything"}))


class Colour(StrEnum):
    RED = "red"


def test_details_are_normalised_to_json_and_the_stored_event_says_so() -> None:
    event = make_event(0, details={"t": (1, 2), "c": Colour.RED, "when": T0, "f": 1.0})
    stored, record = seal(event, 7, "ab" * 32)
    assert stored.details == {
        "t": [1, 2],
        "c": "red",
        "when": "2024-05-01T09:30:00.123456Z",
        "f": 1.0,
    }
    assert (stored.seq, stored.prev_hash, stored.hash) == (7, "ab" * 32, compute_hash(stored))
    assert decode_record(record, stored.hash) == stored


@pytest.mark.parametrize(
    "details",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": {1, 2}}, {1: "int key"}, {"x": object()}],
)
def test_values_json_can_not_hold_are_refused(details: dict) -> None:
    with pytest.raises(EncodingError):
        canonical_bytes({**make_event(0).model_dump(), "details": details})


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(EncodingError):
        canonical_bytes(make_event(0, reason="\ud800"))


# --- verify_chain ---------------------------------------------------------------------


def test_a_good_chain_verifies_and_says_it_is_unanchored() -> None:
    recs = records(5)
    result = verify_chain(recs)
    assert result.ok and result.count == 5 and result.head_hash == recs[-1].hash
    assert result.unanchored_since == 1
    assert result.unanchored_since_at == T0
    assert "unanchored since seq 1 (2024-05-01T09:30:00.123456Z)" in result.note


def test_an_empty_chain_verifies() -> None:
    result = verify_chain([])
    assert result.ok and result.count == 0 and result.head_hash == ""
    assert result.note == "the log is empty"


def _flip_hash(r: list[StoredRecord]) -> None:
    r[2] = replace(r[2], hash="0" * 64)


def _edit_record(r: list[StoredRecord]) -> None:
    r[2] = replace(r[2], record=r[2].record.replace(b"alice", b"alicf"))


def _relink(r: list[StoredRecord]) -> None:
    # A self-consistent replacement of record 3: its own hash is right, the next link is not.
    event, record = seal(make_event(99, model="ranker", request_id="req-0002"), 3, r[1].hash)
    r[2] = StoredRecord(3, event.hash, record, dict(r[2].columns))


def _bad_prev(r: list[StoredRecord]) -> None:
    event, record = seal(make_event(2), 3, "f" * 64)
    r[2] = StoredRecord(3, event.hash, record, dict(r[2].columns))


def _delete(r: list[StoredRecord]) -> None:
    del r[2]


def _swap(r: list[StoredRecord]) -> None:
    r[2], r[3] = r[3], r[2]


def _swap_contents(r: list[StoredRecord]) -> None:
    r[2], r[3] = replace(r[3], seq=3), replace(r[2], seq=4)


def _duplicate(r: list[StoredRecord]) -> None:
    r.insert(3, r[2])


def _copy_to_end(r: list[StoredRecord]) -> None:
    r.append(replace(r[2], seq=6))


def _column(r: list[StoredRecord]) -> None:
    r[2] = replace(r[2], columns={**r[2].columns, "model": "fraud"})


def _not_canonical(r: list[StoredRecord]) -> None:
    body = r[2].record.replace(b'"action"', b' "action"', 1)
    r[2] = replace(r[2], record=body, hash=hashlib.sha256(body).hexdigest())


CASES: list[tuple[str, Callable[[list[StoredRecord]], None], int, Problem]] = [
    ("hash column edited", _flip_hash, 3, Problem.HASH_MISMATCH),
    ("record bytes edited", _edit_record, 3, Problem.HASH_MISMATCH),
    ("record replaced with a valid one", _relink, 4, Problem.BROKEN_LINK),
    ("prev_hash wrong", _bad_prev, 3, Problem.BROKEN_LINK),
    ("record deleted", _delete, 3, Problem.SEQ_GAP),
    ("records out of order", _swap, 3, Problem.REORDER),
    ("contents swapped", _swap_contents, 3, Problem.REORDER),
    ("record duplicated in place", _duplicate, 4, Problem.DUPLICATE),
    ("record copied to the end", _copy_to_end, 6, Problem.DUPLICATE),
    ("index column edited", _column, 3, Problem.COLUMN_MISMATCH),
    ("record not canonical", _not_canonical, 3, Problem.MALFORMED),
]


@pytest.mark.parametrize("name,tamper,bad_seq,problem", CASES, ids=[c[0] for c in CASES])
def test_tampering_names_the_first_bad_seq(
    name: str, tamper: Callable[[list[StoredRecord]], None], bad_seq: int, problem: Problem
) -> None:
    recs = records(5)
    tamper(recs)
    result = verify_chain(recs)
    assert not result.ok, name
    assert (result.first_bad_seq, result.problem) == (bad_seq, problem), result.reason
    assert f"seq {bad_seq}" in result.reason


def test_anchor_detects_the_newest_records_removed() -> None:
    recs = records(6)
    anchor = Anchor(count=6, head=recs[-1].hash, at=T0)
    result = verify_chain(recs[:3], anchors=[anchor])
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 4, Problem.TRUNCATED)
    assert "the newest 3 records (seq 4..6) were removed" in result.reason


def test_anchor_detects_a_consistent_rewrite_and_history_pins_it() -> None:
    good = build(8)
    forged = [(e, r) for e, r in good[:2]]
    prev = good[1][0].hash
    for i in range(2, 8):
        event, record = seal(make_event(i, reason="rewritten"), i + 1, prev)
        forged.append((event, record))
        prev = event.hash
    recs = [StoredRecord(e.seq, e.hash, r) for e, r in forged]
    assert verify_chain(recs).ok  # a chain alone can not see it
    tip = Anchor(count=8, head=good[-1][0].hash)
    result = verify_chain(recs, anchors=[tip])
    assert (result.first_bad_seq, result.problem) == (8, Problem.ANCHOR_MISMATCH)
    history = [Anchor(count=e.seq, head=e.hash) for e, _ in good]
    result = verify_chain(recs, anchors=history)
    assert (result.first_bad_seq, result.problem) == (3, Problem.ANCHOR_MISMATCH)


def test_records_after_the_anchor_are_reported_unanchored() -> None:
    recs = records(5)
    result = verify_chain(recs, anchors=[Anchor(count=3, head=recs[2].hash, at=T0)])
    assert result.ok and result.unanchored_since == 4
    assert result.note.startswith("anchored up to seq 3; unanchored since seq 4")
    full = verify_chain(recs, anchors=[Anchor(count=5, head=recs[4].hash)])
    assert full.ok and full.unanchored_since is None and full.note == "anchored up to seq 5"


# --- export ---------------------------------------------------------------------------


def test_jsonl_export_verifies_offline_and_catches_an_edit() -> None:
    events = [e for e, _ in build(6)]
    out = io.StringIO()
    assert write_jsonl(events, out) == 6
    lines = out.getvalue().splitlines()
    assert json.loads(lines[0])["hash"] == events[0].hash
    assert verify_jsonl(lines).ok
    assert verify_jsonl(lines, anchors=[Anchor(count=6, head=events[-1].hash)]).ok
    edited = [*lines[:3], lines[3].replace("bob", "eve"), *lines[4:]]
    assert verify_jsonl(edited).first_bad_seq == 4
    broken = [*lines[:2], "{not json", *lines[3:]]
    result = verify_jsonl(broken)
    assert (result.first_bad_seq, result.problem) == (3, Problem.MALFORMED)
    assert verify_jsonl(lines[:5], anchors=[Anchor(count=6, head=events[-1].hash)]).problem == (
        Problem.TRUNCATED
    )


def test_csv_export_has_a_header_and_details_as_json() -> None:
    events = [e for e, _ in build(3)]
    out = io.StringIO()
    assert write_csv(events, out) == 3
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS and rows[0][-1] == "hash"
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["at"] == "2024-05-01T09:30:00.123456Z"
    assert json.loads(first["details"]) == events[0].details
    assert first["hash"] == events[0].hash


def test_csv_can_defuse_spreadsheet_formulas() -> None:
    event = seal(make_event(0, reason="=HYPERLINK(evil)"), 1, "")[0]
    plain, safe = io.StringIO(), io.StringIO()
    write_csv([event], plain)
    write_csv([event], safe, spreadsheet_safe=True)
    assert ",=HYPERLINK(evil)," in plain.getvalue()
    assert ",'=HYPERLINK(evil)," in safe.getvalue()
