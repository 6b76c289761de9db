"""All GTO tags of a repository at one moment, read with one ``git for-each-ref``, plus a cheap
fingerprint of the refs on disk that says when the snapshot must be read again.

A snapshot that is not racy is also saved to the user's cache folder (``gto_tagcache``): the
next process whose refs have the same fingerprint starts from it without running git."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from console.backends import gto_tagcache
from console.backends.lru import LRU
from console.domain import ModelVersion, RegistryEvent, RegistryEventKind
from console.git.cmd import run_git
from console.git.gto_tags import ArtifactState, TagEvent, fold, parse_tag
from console.git.yamlread import safe_load

# %(object) and %(type) come from the tag object itself: much cheaper than peeling (%(*...)).
FIELDS = (
    "%(refname)",
    "%(objecttype)",
    "%(object)",
    "%(type)",
    "%(taggername)",
    "%(taggeremail)",
    "%(taggerdate:raw)",
    "%(contents)",
)
FORMAT = "%00".join(FIELDS) + "%00"
# A ref file changed within this long before a read may change again without moving its
# directory's mtime (coarse file-system clocks): such a snapshot is re-read ("racy git").
# File systems that only keep whole seconds get a longer window.
RACY_NS = 100_000_000
RACY_NS_COARSE = 2_000_000_000
ARTIFACTS_KEPT = 64  # artifacts whose folded state and versions a snapshot keeps

Stat = gto_tagcache.Stat


def _stat(path: Path) -> Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def tag_dirs(git_dir: Path) -> list[Path]:
    """``refs`` and every directory under ``refs/tags`` (loose tags live there)."""
    dirs = [git_dir / "refs", git_dir / "refs" / "tags"]
    for root, subdirs, _ in os.walk(dirs[1]):
        dirs.extend(Path(root) / d for d in subdirs)
    return dirs


def fingerprint(git_dir: Path, dirs: Iterable[Path]) -> tuple[Stat, ...]:
    """Inode, size and mtime of packed-refs, the reftable list and the loose tag directories."""
    files = [git_dir / "packed-refs", git_dir / "reftable" / "tables.list"]
    return tuple(_stat(p) for p in [*files, *dirs])


_ZONES: dict[str, timezone] = {}


def parse_git_date(raw: str) -> tuple[int, datetime]:
    """``1700000000 +0130`` -> (unix seconds, aware datetime in that offset)."""
    stamp_text, _, zone_text = raw.strip().partition(" ")
    try:
        stamp = int(stamp_text)
    except ValueError:
        stamp = 0
    zone = _ZONES.get(zone_text)
    if zone is None:
        offset = timedelta(0)
        if re.fullmatch(r"[+-]\d{4}", zone_text):
            sign = -1 if zone_text[0] == "-" else 1
            offset = sign * timedelta(hours=int(zone_text[1:3]), minutes=int(zone_text[3:5]))
        zone = _ZONES.setdefault(zone_text, timezone(offset))
    return stamp, datetime.fromtimestamp(stamp, tz=zone)


def parse_artifacts_yaml(data: bytes | None) -> dict[str, dict[str, Any]]:
    """gto's ``artifacts.yaml``: name -> {type, path, description, labels}; ValueError if broken."""
    if not data:
        return {}
    try:
        raw = safe_load(data)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("expected a mapping of artifact names")
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in raw.items()}


class Snapshot:
    """GTO tags grouped by artifact, with per-artifact state and domain objects cached."""

    def __init__(
        self,
        events: dict[str, list[TagEvent]],
        counters: dict[str, int],
        names: set[str],
        *,
        git_dir: Path | None = None,
        dirs: list[Path] | None = None,
        fp: tuple[Stat, ...] = (),
        started_ns: int = 0,
        started_mono: float = 0.0,
    ) -> None:
        self._events = events
        self._counters = counters
        self._names = names
        self._git_dir = git_dir
        self._dirs = dirs or []
        self._fp = fp
        self.started_mono = started_mono
        mtimes = [st[2] for st in fp if st is not None]
        coarse = bool(mtimes) and all(m % 1_000_000_000 == 0 for m in mtimes)
        self._racy = max(mtimes, default=0) >= started_ns - (RACY_NS_COARSE if coarse else RACY_NS)
        # Folded per artifact on demand; bounded: 2,000 models' states and versions are ~20 MB.
        self._states: LRU = LRU(ARTIFACTS_KEPT)  # artifact -> ArtifactState
        self._versions: LRU = LRU(ARTIFACTS_KEPT)  # artifact -> tuple[ModelVersion, ...]
        self._history: LRU = LRU(ARTIFACTS_KEPT)  # artifact -> tuple[RegistryEvent, ...]
        self._by_name: dict[str, TagEvent] | None = None

    @property
    def racy(self) -> bool:
        """True when a ref changed so shortly before the read that a later change may not show
        in the fingerprint: never trusted as current, never saved."""
        return self._racy

    def is_current(self) -> bool:
        """True when the refs on disk can not have changed since this snapshot was read."""
        if self._git_dir is None or self._racy:
            return False
        return fingerprint(self._git_dir, self._dirs) == self._fp

    def artifacts(self) -> list[str]:
        return sorted(self._events)

    def state(self, artifact: str) -> ArtifactState | None:
        if artifact not in self._events:
            return None
        state: ArtifactState | None = self._states.lookup(artifact)
        if state is None:
            state = fold(artifact, self._events[artifact])
            self._states.store(artifact, state)
        return state

    def counter(self, artifact: str) -> int:
        """Highest counter among the artifact's tags (lightweight ones too, as gto counts)."""
        return self._counters.get(artifact, 0)

    def has_tag(self, name: str) -> bool:
        return name in self._names

    def event(self, name: str) -> TagEvent | None:
        if self._by_name is None:
            self._by_name = {e.name: e for evs in self._events.values() for e in evs}
        return self._by_name.get(name)

    def model_versions(self, artifact: str) -> tuple[ModelVersion, ...]:
        """Versions oldest -> newest (semantic order), registered or assigned by commit."""
        cached: tuple[ModelVersion, ...] | None = self._versions.lookup(artifact)
        if cached is not None:
            return cached
        state = self.state(artifact)
        out: list[ModelVersion] = []
        for vs in state.sorted_versions() if state else ():
            if not (vs.registered or vs.active):
                continue
            origin = vs.registration or vs.first_seen
            tags = {"gto.tag": origin.name} if origin else {}
            if not vs.registered:
                tags["gto.registered"] = "false"
            out.append(
                ModelVersion(
                    model=artifact,
                    version=vs.version,
                    commit=vs.commit,
                    created_by=origin.tagger if origin else "",
                    created_at=origin.at if origin else None,
                    stages=tuple(vs.stages),
                    deregistered=vs.registered and not vs.active,
                    tags=tags,
                )
            )
        result = tuple(out)
        self._versions.store(artifact, result)
        return result

    def history(self, artifact: str) -> tuple[RegistryEvent, ...]:
        """Every tag event of the artifact, oldest first."""
        cached: tuple[RegistryEvent, ...] | None = self._history.lookup(artifact)
        if cached is not None:
            return cached
        state = self.state(artifact)
        if state is None:
            return ()
        out = tuple(
            RegistryEvent(
                model=artifact,
                kind=RegistryEventKind(ev.tag.action.value),
                version=ev.tag.version or state.event_versions.get(ev.name),
                stage=ev.tag.stage,
                actor=ev.tagger,
                at=ev.at,
                ref=ev.name,
                message=ev.message,
            )
            for ev in state.events
        )
        self._history.store(artifact, out)
        return out


def parse_refs(out: bytes) -> tuple[dict[str, list[TagEvent]], dict[str, int], set[str]]:
    """Parse ``for-each-ref --format=FORMAT`` output into (annotated GTO events by artifact,
    highest counter by artifact, every tag name)."""
    events: dict[str, list[TagEvent]] = {}
    counters: dict[str, int] = {}
    names: set[str] = set()
    tokens = out.split(b"\0")
    width = len(FIELDS)
    for i in range(0, len(tokens) - width + 1, width):
        ref, objtype, peeled, peeled_type, tagger, email, date, contents = tokens[i : i + width]
        name = ref.lstrip(b"\n").decode(errors="replace").removeprefix("refs/tags/")
        names.add(name)
        parsed = parse_tag(name)
        if parsed is None:
            continue
        if parsed.counter is not None:
            counters[parsed.artifact] = max(counters.get(parsed.artifact, 0), parsed.counter)
        if objtype != b"tag" or peeled_type != b"commit":
            continue  # gto ignores lightweight tags
        stamp, at = parse_git_date(date.decode())
        events.setdefault(parsed.artifact, []).append(
            TagEvent(
                name=name,
                tag=parsed,
                commit=peeled.decode(),
                tagger=tagger.decode(errors="replace"),
                email=email.decode(errors="replace").strip("<>"),
                timestamp=stamp,
                at=at,
                message=contents.decode(errors="replace").strip(),
            )
        )
    return events, counters, names


async def read_snapshot(
    repo: Path, git_dir: Path, timeout: float, *, saved: bool = True
) -> Snapshot:
    """Every tag of ``repo``: from the snapshot an earlier process saved for exactly these refs
    (unless ``saved`` is False), else with one ``git for-each-ref`` (then saved if not racy)."""
    started_ns, started_mono = time.time_ns(), time.monotonic()
    dirs = tag_dirs(git_dir)
    fp = fingerprint(git_dir, dirs)  # before reading: a change during the read is seen next time
    parsed = await asyncio.to_thread(gto_tagcache.load, git_dir, dirs, fp) if saved else None
    from_git = parsed is None
    if parsed is None:
        _, out, _ = await run_git(
            repo, "for-each-ref", f"--format={FORMAT}", "refs/tags", timeout=timeout
        )
        parsed = parse_refs(out)
    snap = Snapshot(
        *parsed,
        git_dir=git_dir,
        dirs=dirs,
        fp=fp,
        started_ns=started_ns,
        started_mono=started_mono,
    )
    if from_git and not snap.racy:
        await asyncio.to_thread(gto_tagcache.save, git_dir, dirs, fp, *parsed)
    return snap
