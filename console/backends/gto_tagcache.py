"""The parsed GTO tags of a repository, saved between processes so a cold start skips git.

One file per repository under the user's cache folder, keyed by a hash of the resolved git dir.
A file is used only when it names the same git dir, was saved by this format and tag grammar,
from a snapshot that was not racy, with the same fingerprint of the refs on disk as now: the
same rule that lets a snapshot in memory stay current. Anything else (missing, damaged,
truncated, foreign, older, too big) is ignored and replaced by the next good read. JSON only:
whoever can write the cache folder can not make the console run code.

Layout: one line of JSON header (what the file is about, and the SHA-256 of the rest), then the
JSON body. A header that does not match is rejected without parsing the body.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from console import cachefiles
from console.git.gto_tags import TAG_RE, Action, TagEvent, TagName

log = logging.getLogger(__name__)

KIND = "cd4ml-console/gto-tags"
VERSION = 1
MAX_AGE = 30 * 86400  # a file not saved again for this long is for a repository long gone
MAX_BYTES = 64 << 20  # ~25x the 10,399 tags of the deep benchmark; bigger files are not ours
# Files written under another tag grammar or another shape of TagEvent are not reused.
GRAMMAR = hashlib.sha256(
    "\0".join([TAG_RE.pattern, *(f.name for f in dataclasses.fields(TagEvent))]).encode()
).hexdigest()[:16]

Stat = tuple[int, int, int] | None
Parsed = tuple[dict[str, list[TagEvent]], dict[str, int], set[str]]

_ACTIONS = {a.value: a for a in Action}
_STR, _INT, _NONE = str, int, type(None)
# Types of a saved row (name, action, version, stage, counter, commit, tagger, email, stamp,
# offset, message) by action: what parse_tag gives for each kind of tag.
_ROW_TYPES = {
    (_STR, action, version, stage, counter, _STR, _STR, _STR, _INT, _INT, _STR)
    for action, version, stage in [
        (Action.REGISTER, _STR, _NONE),
        (Action.DEREGISTER, _STR, _NONE),
        (Action.ASSIGN, _NONE, _STR),
        (Action.UNASSIGN, _NONE, _STR),
        (Action.DEPRECATE, _NONE, _NONE),
    ]
    for counter in (_INT, _NONE)
}
_ZONES: dict[int, timezone] = {}


def cache_file(git_dir: Path) -> Path:
    """Where the tags of the repository at ``git_dir`` are saved."""
    return cachefiles.cache_file("gto-tags", _key(git_dir), ".json")


def _key(git_dir: Path) -> str:
    try:
        return str(git_dir.resolve())
    except (OSError, RuntimeError):  # a symlink loop: the path as given still names it
        return str(git_dir.absolute())


def _header(git_dir: Path, dirs: list[Path], fp: tuple[Stat, ...]) -> dict[str, object]:
    """What a saved file must say to be used for the refs on disk now."""
    return {
        "kind": KIND,
        "version": VERSION,
        "grammar": GRAMMAR,
        "git_dir": _key(git_dir),
        "dirs": [d.relative_to(git_dir).as_posix() for d in dirs],
        "fingerprint": [list(st) if st is not None else None for st in fp],
        "racy": False,
    }


def load(git_dir: Path, dirs: list[Path], fp: tuple[Stat, ...]) -> Parsed | None:
    """(events by artifact, counters, tag names) saved for exactly these refs, else None."""
    try:
        path = cache_file(git_dir)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                log.debug("ignored saved GTO tags %s: bigger than %d bytes", path, MAX_BYTES)
                return None
            # Not read(MAX_BYTES + 1): that allocates the whole 64 MB buffer first. A file that
            # grew since fstat is cut here and fails its checksum.
            data = f.read(size + 1)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("could not read saved GTO tags of %s: %s", git_dir, exc)
        return None
    try:
        return _decode(data, _header(git_dir, dirs, fp))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        log.debug("ignored saved GTO tags %s: %s", path, exc)
    except (OverflowError, OSError, RecursionError) as exc:  # absurd timestamps or nesting
        log.debug("ignored saved GTO tags %s: %s", path, exc)
    return None


def _decode(data: bytes, want: dict[str, object]) -> Parsed | None:
    if len(data) > MAX_BYTES:
        raise ValueError("too big")
    head, newline, body = data.partition(b"\n")
    if not newline:
        raise ValueError("no header line")
    header = json.loads(head)
    if not isinstance(header, dict):
        raise TypeError("header is not an object")
    for key, value in want.items():
        if header.get(key) != value:
            if key in ("kind", "version", "grammar", "git_dir"):
                raise ValueError(f"{key} is {header.get(key)!r}, not {value!r}")
            log.debug("saved GTO tags of %s are stale (%s differs)", want["git_dir"], key)
            return None
    if header.get("body_bytes") != len(body):
        raise ValueError("truncated")
    if header.get("body_sha256") != hashlib.sha256(body).hexdigest():
        raise ValueError("checksum mismatch")
    doc = json.loads(body)
    return _rebuild(doc["events"], doc["counters"], doc["names"])


def _rebuild(saved: object, counters: object, other: object) -> Parsed:
    """Domain objects from the body, checking every value has the type parse_refs gives."""
    if not isinstance(saved, dict) or not isinstance(counters, dict) or not isinstance(other, list):
        raise TypeError("body is not {events: {}, counters: {}, names: []}")
    if not all(type(v) is int for v in counters.values()):
        raise TypeError("a counter is not an integer")
    names = set(other)
    if not all(type(n) is str for n in names):
        raise TypeError("a tag name is not a string")
    events: dict[str, list[TagEvent]] = {}
    actions, zones, row_types = _ACTIONS, _ZONES, _ROW_TYPES
    # One string object per distinct value: 8,000 tags name a handful of taggers, versions
    # and stages, and each commit twice or more (~2 MB of copies at 1,000 models).
    one: dict[str, str] = {}
    maybe: dict[str | None, str | None] = {None: None}
    for artifact, rows in saved.items():
        out: list[TagEvent] = []
        for row in rows:
            name, act, version, stage, counter, commit, who, mail, stamp, offset, msg = row
            action = actions[act]
            if (type(name), action, *map(type, row[2:])) not in row_types:
                raise TypeError(f"saved tag {name!r} has values of the wrong type")
            zone = zones.get(offset)
            if zone is None:
                zone = zones.setdefault(offset, timezone(timedelta(seconds=offset)))
            version, stage = maybe.setdefault(version, version), maybe.setdefault(stage, stage)
            commit = one.setdefault(commit, commit)
            who, mail = one.setdefault(who, who), one.setdefault(mail, mail)
            tag = TagName(artifact, action, version, stage, counter)
            at = datetime.fromtimestamp(stamp, tz=zone)
            out.append(TagEvent(name, tag, commit, who, mail, stamp, at, msg))
            names.add(name)
        events[artifact] = out
    return events, counters, names


def save(
    git_dir: Path,
    dirs: list[Path],
    fp: tuple[Stat, ...],
    events: dict[str, list[TagEvent]],
    counters: dict[str, int],
    names: set[str],
) -> None:
    """Replace the saved tags atomically (temp file + rename); never raises: the file only makes
    the next start faster. The caller saves only snapshots that are not racy."""
    try:
        data = _encode(git_dir, dirs, fp, events, counters, names)
    except (ValueError, TypeError) as exc:  # a git dir outside itself; not JSON-able
        log.debug("not saving the GTO tags of %s: %s", git_dir, exc)
        return
    if len(data) > MAX_BYTES:
        log.debug("not saving the GTO tags of %s: %d bytes is too big", git_dir, len(data))
        return
    _write(cache_file(git_dir), data)


def _encode(
    git_dir: Path,
    dirs: list[Path],
    fp: tuple[Stat, ...],
    events: dict[str, list[TagEvent]],
    counters: dict[str, int],
    names: set[str],
) -> bytes:
    rows = {
        artifact: [
            [
                e.name,
                e.tag.action.value,
                e.tag.version,
                e.tag.stage,
                e.tag.counter,
                e.commit,
                e.tagger,
                e.email,
                e.timestamp,
                _offset(e.at),
                e.message,
            ]
            for e in evs
        ]
        for artifact, evs in events.items()
    }
    in_events = {e.name for evs in events.values() for e in evs}
    other = sorted(names - in_events)
    body = json.dumps({"events": rows, "counters": counters, "names": other}).encode()
    header = _header(git_dir, dirs, fp)
    header.update(saved_at=time.time(), body_bytes=len(body))
    header["body_sha256"] = hashlib.sha256(body).hexdigest()
    return json.dumps(header).encode() + b"\n" + body


def _offset(at: datetime) -> int:
    delta = at.utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a failure (read-only home, full disk) is logged."""
    if not cachefiles.write_atomic(path, data):
        log.debug("could not save the GTO tags to %s", path)
        return
    with contextlib.suppress(OSError):
        _prune(path.parent)


def _prune(folder: Path) -> None:
    """Remove temp files left by killed processes and files not saved for ``MAX_AGE``."""
    now = time.time()
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            age = now - entry.stat().st_mtime
            if (entry.suffix == ".tmp" and age > 60) or (entry.suffix == ".json" and age > MAX_AGE):
                entry.unlink()
