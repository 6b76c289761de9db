"""The audit chain: canonical encoding of an event, its SHA-256 hash, and verification of a
sequence of stored records. Storage-independent: the SQLite store and a future PostgreSQL store
keep the same bytes and share this code."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from console.domain import AuditEvent

ANCHOR_RESET = "anchor_reset"  # the action of an admin's re-anchoring (`audit anchor --reset`)
FORMAT = "cd4ml-audit-chain/1"
"""Name of the encoding below; stored beside the records so a later format can be told apart."""

CHAIN_FIELDS: tuple[str, ...] = tuple(f for f in AuditEvent.model_fields if f != "hash")
"""Every field of an event that is hashed: all but ``hash`` itself."""

_STR_FIELDS = frozenset(
    f for f in CHAIN_FIELDS if f not in {"seq", "at", "details"}
)  # actor, action, model, version, stage, before, after, reason, result, request_id, prev_hash
_FIELD_SET = frozenset(CHAIN_FIELDS)
_AT_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class EncodingError(ValueError):
    """An event holds a value the canonical encoding can not represent."""


def format_time(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds and ``Z``; a naive datetime is taken as UTC."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`; anything else raises EncodingError."""
    if not _AT_RE.fullmatch(text):
        raise EncodingError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (dict/list/str/int/float/bool/None)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _plain(value.value, where)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodingError(f"{where} is {value!r}; only finite numbers can be recorded")
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"), where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"{where} has a key {key!r} that is not a string")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise EncodingError(f"{where} is a {type(value).__name__}, which JSON can not hold")


def event_fields(event: AuditEvent | Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of ``event`` as plain JSON data (``hash`` dropped)."""
    raw = event.model_dump() if isinstance(event, AuditEvent) else dict(event)
    raw.pop("hash", None)
    missing = [f for f in CHAIN_FIELDS if f not in raw]
    extra = sorted(set(raw) - set(CHAIN_FIELDS))
    if missing or extra:
        raise EncodingError(f"event fields: missing {missing}, unknown {extra}")
    out = {f: _plain(raw[f], f) for f in CHAIN_FIELDS}
    if not isinstance(raw["at"], datetime):
        out["at"] = format_time(parse_time(str(raw["at"])))
    if not isinstance(out["seq"], int) or isinstance(out["seq"], bool):
        raise EncodingError(f"seq is {out['seq']!r}, not an integer")
    if not isinstance(out["details"], dict):
        raise EncodingError("details must be a JSON object")
    for name in _STR_FIELDS:
        if not isinstance(out[name], str):
            raise EncodingError(f"{name} is {out[name]!r}, not a string")
    return out


def canonical_bytes(event: AuditEvent | Mapping[str, Any]) -> bytes:
    """The exact bytes that are hashed and stored: JSON of every field but ``hash``, keys
    sorted at every level, no whitespace, UTF-8, times as ISO 8601 UTC microseconds ``Z``."""
    try:
        return _dumps(event_fields(event))
    except UnicodeEncodeError as exc:
        raise EncodingError(f"event text is not valid Unicode: {exc.reason}") from None


def hash_bytes(record: bytes) -> str:
    """SHA-256 hex digest of stored record bytes."""
    return hashlib.sha256(record).hexdigest()


def compute_hash(event: AuditEvent | Mapping[str, Any]) -> str:
    """The hash an event must carry: SHA-256 hex over :func:`canonical_bytes`."""
    return hash_bytes(canonical_bytes(event))


def seal(event: AuditEvent, seq: int, prev_hash: str) -> tuple[AuditEvent, bytes]:
    """Place ``event`` at ``seq`` after ``prev_hash``; returns the event exactly as stored
    (normalised by a round trip through its encoding) and the bytes to store."""
    record = canonical_bytes(event.model_copy(update={"seq": seq, "prev_hash": prev_hash}))
    return decode_record(record, hash_bytes(record)), record


def _dumps(data: Any) -> bytes:
    text = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def _decode_fields(record: bytes) -> dict[str, Any]:
    """Parse stored bytes back into fields, insisting on the exact shape of the encoding."""
    try:
        data = json.loads(record.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EncodingError(f"not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EncodingError("not a JSON object")
    if data.keys() != _FIELD_SET:
        raise EncodingError(f"fields {sorted(data)} are not {sorted(CHAIN_FIELDS)}")
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise EncodingError(f"seq is {seq!r}, not an integer")
    if not (isinstance(data["at"], str) and _AT_RE.fullmatch(data["at"])):
        raise EncodingError(f"at is {data['at']!r}, not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    if not isinstance(data["details"], dict):
        raise EncodingError("details is not a JSON object")
    bad = [name for name in _STR_FIELDS if not isinstance(data[name], str)]
    if bad:
        raise EncodingError(f"{', '.join(sorted(bad))} not text")
    try:
        same = _dumps(data) == record
    except (ValueError, UnicodeEncodeError) as exc:
        raise EncodingError(str(exc)) from None
    if not same:
        raise EncodingError("bytes are not in canonical form")
    return data


def decode_record(record: bytes, hash_hex: str) -> AuditEvent:
    """The event stored as ``record`` with hash ``hash_hex`` (the hash is not checked here)."""
    fields = _decode_fields(record)
    fields["at"] = parse_time(fields["at"])
    return AuditEvent(**fields, hash=hash_hex)


# --- verification -------------------------------------------------------------------------


class Problem(StrEnum):
    """What kind of damage verification found."""

    HASH_MISMATCH = "hash_mismatch"
    MALFORMED = "malformed"
    BROKEN_LINK = "broken_link"
    SEQ_GAP = "seq_gap"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    COLUMN_MISMATCH = "column_mismatch"
    TRUNCATED = "truncated"
    ANCHOR_MISMATCH = "anchor_mismatch"
    ANCHOR_MISSING = "anchor_missing"  # the records remember an anchor the ref does not hold
    ANCHOR_UNREADABLE = "anchor_unreadable"


class Anchor(BaseModel):
    """A (count, head hash) pair kept outside the store, and when it was written."""

    model_config = ConfigDict(frozen=True)

    count: int
    head: str
    at: datetime | None = None
    source: str = ""  # where it was read from, e.g. the anchor commit id


class VerifyResult(BaseModel):
    """Outcome of verifying a chain: ok, or the first bad seq and why."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    count: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: Problem | None = None
    reason: str = ""
    anchor: Anchor | None = None
    unanchored_since: int | None = None
    unanchored_since_at: datetime | None = None
    note: str = ""
    # Anchor commit -> (its count, seq of the newest record remembering it): the log's own
    # memory of the anchors it was written under (details.anchor). Which of them the given
    # anchors must hold is the caller's to judge: a store shared by several clones remembers
    # each clone's anchors (console.audit.anchor checks them against the repository).
    remembered: dict[str, tuple[int, int]] = Field(default_factory=dict, exclude=True)


@dataclass(frozen=True)
class StoredRecord:
    """One record as a store holds it. Values are untrusted, hence ``Any``: ``seq`` the
    position column, ``hash`` the hash column, ``record`` the canonical bytes, ``columns``
    copies of fields kept for indexing (each must equal the decoded field); ``error`` says why
    a record could not even be read."""

    seq: Any
    hash: Any
    record: Any
    columns: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""


class _Bad(Exception):
    def __init__(self, seq: int, problem: Problem, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.problem, self.reason = seq, problem, reason


@dataclass
class _Walk:
    """State of one pass over a chain; digests are kept packed (32 bytes per record)."""

    first_seq: int
    expected: int
    prev: str
    digests: bytearray = field(default_factory=bytearray)
    anchors: dict[int, Anchor] = field(default_factory=dict)
    unanchored_from: int | None = None
    unanchored_at: datetime | None = None
    remembered: dict[str, tuple[int, int]] = field(default_factory=dict)  # see VerifyResult

    def digest_of(self, seq: int) -> bytes:
        i = (seq - self.first_seq) * 32
        return bytes(self.digests[i : i + 32]) if 0 <= i < len(self.digests) else b""

    @staticmethod
    def _inner_seq(rec: StoredRecord) -> int | None:
        """The seq a record says it has, when its bytes are intact."""
        if not isinstance(rec.record, bytes) or rec.hash != hash_bytes(rec.record):
            return None
        try:
            return int(_decode_fields(rec.record)["seq"])
        except EncodingError:
            return None

    def step(self, rec: StoredRecord) -> None:
        pos, expected = rec.seq, self.expected
        if rec.error:
            raise _Bad(expected, Problem.MALFORMED, f"seq {expected}: {rec.error}")
        if not isinstance(pos, int) or isinstance(pos, bool):
            raise _Bad(
                expected, Problem.MALFORMED, f"the record after seq {expected - 1} has seq {pos!r}"
            )
        if pos > expected:
            gone = f"seq {expected}" if pos == expected + 1 else f"seq {expected}..{pos - 1}"
            raise _Bad(
                expected, Problem.SEQ_GAP, f"{gone} missing: seq {pos} follows seq {expected - 1}"
            )
        if pos < self.first_seq:
            inner = self._inner_seq(rec)
            if inner is not None and inner >= self.first_seq:
                raise _Bad(
                    inner,
                    Problem.REORDER,
                    f"seq {inner}: its record is stored outside the chain, at position {pos}",
                )
            raise _Bad(expected, Problem.MALFORMED, f"a record is stored before seq {expected}")
        if pos < expected:
            raise _Bad(
                expected,
                Problem.DUPLICATE,
                f"seq {expected} expected, but seq {pos} appears again (a duplicate)",
            )
        record, stored_hash = rec.record, rec.hash
        if not isinstance(record, bytes):
            raise _Bad(
                pos, Problem.MALFORMED, f"seq {pos}: record is a {type(record).__name__}, not bytes"
            )
        digest = hashlib.sha256(record).digest()
        if not (isinstance(stored_hash, str) and stored_hash == digest.hex()):
            raise _Bad(
                pos,
                Problem.HASH_MISMATCH,
                f"seq {pos}: the record's content does not match its stored hash "
                "(the record or its hash was edited)",
            )
        try:
            fields = _decode_fields(record)
        except EncodingError as exc:
            raise _Bad(
                pos, Problem.MALFORMED, f"seq {pos}: record can not be read: {exc}"
            ) from None
        inner = fields["seq"]
        if inner != pos:
            if inner < pos and self.digest_of(inner) == digest:
                raise _Bad(pos, Problem.DUPLICATE, f"seq {pos} holds a copy of record {inner}")
            raise _Bad(
                pos,
                Problem.REORDER,
                f"seq {pos} holds record {inner} (records were moved or swapped)",
            )
        if fields["prev_hash"] != self.prev:
            before = f"seq {pos - 1}" if pos > self.first_seq else "the start of the log"
            raise _Bad(
                pos,
                Problem.BROKEN_LINK,
                f"seq {pos}: prev_hash does not match the hash of {before} "
                "(a record was inserted, replaced or removed here)",
            )
        for name, value in rec.columns.items():
            if value != fields.get(name):
                raise _Bad(
                    pos,
                    Problem.COLUMN_MISMATCH,
                    f"seq {pos}: column {name} holds {value!r} but the record says {fields.get(name)!r}",
                )
        anchor = self.anchors.get(pos)
        if anchor is not None and anchor.head != stored_hash:
            when = f" (anchored {format_time(anchor.at)})" if anchor.at else ""
            raise _Bad(
                pos,
                Problem.ANCHOR_MISMATCH,
                f"seq {pos}: hash {stored_hash[:12]} differs from the anchor's {anchor.head[:12]}"
                f"{when}: the log was rewritten at or before seq {pos}",
            )
        if pos == self.unanchored_from:
            self.unanchored_at = parse_time(fields["at"])
        said = fields["details"].get("anchor")
        if fields["action"] == ANCHOR_RESET:  # an admin accepted the log as it is here
            self.remembered.clear()
        elif isinstance(said, dict) and isinstance(said.get("commit"), str):
            count = said.get("count")
            if isinstance(count, int) and not isinstance(count, bool):
                self.remembered[said["commit"]] = (count, pos)
        self.digests += digest
        self.prev = stored_hash
        self.expected = pos + 1


def _reclassify_gap(
    bad: _Bad, rec: StoredRecord, after: StoredRecord | None, expected: int
) -> None:
    """A gap whose missing record comes right after is a reordering, not a loss."""
    if after is not None and after.seq == expected:
        bad.problem = Problem.REORDER
        bad.reason = f"seq {rec.seq} is stored before seq {expected} (records out of order)"


def verify_chain(
    records: Iterable[StoredRecord],
    *,
    anchors: Iterable[Anchor] | None = None,
    first_seq: int = 1,
    first_prev: str = "",
) -> VerifyResult:
    """Check ``records`` (in storage order) link up from ``first_seq``, each hash matching its
    bytes and each column its record; then check every anchor. Stops at the first bad record.

    With several anchors (an anchor's history), each must match the record at its count, so a
    consistent rewrite is pinned down to the oldest anchor it contradicts.

    The anchors the records remember (``details.anchor``) are returned in ``remembered``
    for the caller to hold against the repository (``console.audit.anchor``).
    """
    walk = _Walk(first_seq=first_seq, expected=first_seq, prev=first_prev)
    for a in anchors or ():
        walk.anchors.setdefault(a.count, a)
    tip = max(walk.anchors.values(), key=lambda a: a.count, default=None)
    walk.unanchored_from = tip.count + 1 if tip is not None else first_seq
    stream = iter(records)
    try:
        for rec in stream:
            try:
                walk.step(rec)
            except _Bad as bad:
                if bad.problem is Problem.SEQ_GAP:
                    _reclassify_gap(bad, rec, next(stream, None), walk.expected)
                raise
    except _Bad as bad:
        return VerifyResult(
            ok=False,
            count=walk.expected - first_seq,
            head_hash=walk.prev,
            first_bad_seq=bad.seq,
            problem=bad.problem,
            reason=bad.reason,
            anchor=tip,
        )
    count, head = walk.expected - first_seq, walk.prev
    last = walk.expected - 1
    if tip is not None and last < tip.count:
        n = tip.count - last
        gone = f"seq {last + 1}" if n == 1 else f"seq {last + 1}..{tip.count}"
        when = f" at {format_time(tip.at)}" if tip.at else ""
        return VerifyResult(
            ok=False,
            count=count,
            head_hash=head,
            first_bad_seq=last + 1,
            problem=Problem.TRUNCATED,
            reason=f"the newest {n} record{'s' if n > 1 else ''} ({gone}) were removed: the anchor"
            f"{when} says {tip.count} records, the log has {count}",
            anchor=tip,
        )
    return VerifyResult(
        ok=True,
        count=count,
        head_hash=head,
        anchor=tip,
        unanchored_since=walk.unanchored_from if walk.unanchored_at else None,
        unanchored_since_at=walk.unanchored_at,
        note=_note(tip, walk, count),
        remembered=walk.remembered,
    )


def _note(tip: Anchor | None, walk: _Walk, count: int) -> str:
    if count == 0:
        return "the log is empty"
    if walk.unanchored_at is None:
        return f"anchored up to seq {tip.count}" if tip else ""
    since = f"unanchored since seq {walk.unanchored_from} ({format_time(walk.unanchored_at)})"
    if tip is None:
        return f"{since}: no anchor, so removal of the newest records would go unnoticed"
    return f"anchored up to seq {tip.count}; {since}"
