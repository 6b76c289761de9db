"""GTO's git-tag grammar and what a set of tags means: pure functions, no I/O.

Grammar (checked against gto 1.10's own regular expressions and CLI):
``ART@vX.Y.Z`` register, ``ART@vX.Y.Z!`` deregister, ``ART#STAGE`` assign, ``ART#STAGE!`` unassign,
``ART@deprecated`` deprecate; each may end with a counter ``#N``. An artifact ``dir:name`` is
written ``dir=name`` in a tag. Counters are per artifact: gto writes max(counter)+1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from console.domain.versions import sort_versions

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_/-]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9_./-]+"
_NUM = r"(?:0|[1-9]\d*)"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (
    rf"v{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)
NAME_RE = re.compile(rf"^{_NAME}$")
ARTIFACT_RE = re.compile(rf"^(?:{_DIRNAME}:)?{_NAME}$")
VERSION_RE = re.compile(rf"^{_SEMVER}$")
TAG_RE = re.compile(
    rf"^(?P<artifact>(?:{_DIRNAME}=)?{_NAME})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?$"
)


class Action(StrEnum):
    """What a GTO tag records."""

    REGISTER = "register"
    DEREGISTER = "deregister"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    DEPRECATE = "deprecate"


# gto's own tie-break between events of the same second (its ``priority``).
PRIORITY = {
    Action.DEPRECATE: 2,
    Action.REGISTER: 3,
    Action.DEREGISTER: 4,
    Action.ASSIGN: 5,
    Action.UNASSIGN: 6,
}


@dataclass(frozen=True, slots=True)
class TagName:
    """A parsed GTO tag name; ``artifact`` uses ``:`` for the sub-directory separator."""

    artifact: str
    action: Action
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def artifact_to_tag(artifact: str) -> str:
    """``dir:name`` -> ``dir=name`` (how an artifact is written inside a tag)."""
    return artifact.replace(":", "=")


def tag_to_artifact(text: str) -> str:
    """``dir=name`` -> ``dir:name``."""
    return text.replace("=", ":")


def is_valid_name(name: str) -> bool:
    """A stage or plain artifact name: letters, digits, ``-``, ``_``, ``/``; alphanumeric ends."""
    return NAME_RE.match(name) is not None


def is_valid_artifact(name: str) -> bool:
    """An artifact name, optionally ``dir:name`` (the dir may also contain ``.``)."""
    return ARTIFACT_RE.match(name) is not None


def is_valid_version(version: str) -> bool:
    """A GTO version: semver with the ``v`` prefix, e.g. ``v1.2.0-rc.1``."""
    return VERSION_RE.match(version) is not None


def parse_tag(name: str) -> TagName | None:
    """Parse a tag name; None when it is not a GTO tag (or is gto's unused ``@created``)."""
    match = TAG_RE.match(name)
    if match is None or match["created"]:
        return None
    artifact = tag_to_artifact(match["artifact"])
    counter = int(match["counter"]) if match["counter"] else None
    cancel = match["cancel"] == "!"
    if match["deprecated"]:
        return TagName(artifact, Action.DEPRECATE, counter=counter)
    if match["version"]:
        action = Action.DEREGISTER if cancel else Action.REGISTER
        return TagName(artifact, action, version=match["version"], counter=counter)
    action = Action.UNASSIGN if cancel else Action.ASSIGN
    return TagName(artifact, action, stage=match["stage"], counter=counter)


def format_tag(
    artifact: str,
    action: Action,
    *,
    version: str | None = None,
    stage: str | None = None,
    counter: int | None = None,
) -> str:
    """The tag name for an event; raises ValueError for names gto would refuse."""
    if not is_valid_artifact(artifact):
        raise ValueError(
            f"invalid artifact name {artifact!r}: use letters, digits, '-', '_', '/', "
            "starting and ending with a letter or digit (optionally 'dir:name')"
        )
    base = artifact_to_tag(artifact)
    if action in (Action.REGISTER, Action.DEREGISTER):
        if version is None or not is_valid_version(version):
            raise ValueError(f"invalid version {version!r}: expected semver like v1.2.0")
        text = f"{base}@{version}" + ("!" if action is Action.DEREGISTER else "")
    elif action in (Action.ASSIGN, Action.UNASSIGN):
        if stage is None or not is_valid_name(stage):
            raise ValueError(
                f"invalid stage name {stage!r}: use letters, digits, '-', '_', '/', "
                "starting and ending with a letter or digit"
            )
        text = f"{base}#{stage}" + ("!" if action is Action.UNASSIGN else "")
    else:
        text = f"{base}@deprecated"
    if counter is not None:
        if counter < 0:
            raise ValueError(f"counter must be >= 0, not {counter}")
        text += f"#{counter}"
    return text


def next_counter(tag_names: Iterable[str], artifact: str) -> int:
    """The counter gto would write next for ``artifact``: highest existing counter + 1."""
    highest = 0
    for name in tag_names:
        parsed = parse_tag(name)
        if parsed and parsed.artifact == artifact and parsed.counter is not None:
            highest = max(highest, parsed.counter)
    return highest + 1


# ---------------------------------------------------------------------------------------------
# What a set of tags means, following gto's default `gto show` semantics.


@dataclass(frozen=True, slots=True)
class TagEvent:
    """One annotated GTO tag as read from git."""

    name: str
    tag: TagName
    commit: str
    tagger: str
    email: str
    timestamp: int
    at: datetime
    message: str = ""

    @property
    def order(self) -> tuple[int, int, int, str]:
        """Event order: tagger time, then gto's priority, then counter and name."""
        return (self.timestamp, PRIORITY[self.tag.action], self.tag.counter or 0, self.name)


@dataclass
class VersionState:
    """One version of an artifact: its registrations and (de)registration status."""

    version: str
    commit: str
    registration: TagEvent | None = None  # the latest register tag (gto's authoring event)
    first_seen: TagEvent | None = None  # the first tag naming it (for unregistered versions)
    registered: bool = False  # explicitly registered (has a register tag)
    active: bool = True  # False once its latest register/deregister tag is a deregister
    stages: list[str] = field(default_factory=list)
    # gto's creation time (its newest registration, else its newest stage tag) and the order
    # gto first met it in (register tags, then stage tags, each by time and name): same-second
    # stage ties go to the version created first.
    created: int = 0
    seen: tuple[int, int, str] = (2, 0, "")


@dataclass
class StageState:
    """Where a stage points now, and the event that decided it."""

    stage: str
    version: str | None
    event: TagEvent  # the winning assignment, or the latest event of the stage when empty


@dataclass
class ArtifactState:
    """Everything the tags of one artifact say."""

    name: str
    events: list[TagEvent]
    versions: dict[str, VersionState]
    stages: dict[str, StageState]
    event_versions: dict[str, str]  # stage tag name -> the version it resolved to
    deprecated: bool

    def newest(self, *, stage: str | None = None, version: str | None = None) -> int:
        """Tagger time of the latest tag about ``stage`` (or ``version``); 0 when none."""
        return max(
            (
                e.timestamp
                for e in self.events
                if (stage is not None and e.tag.stage == stage)
                or (version is not None and e.tag.version == version)
            ),
            default=0,
        )

    def sorted_versions(self) -> list[VersionState]:
        """Versions oldest to newest in semantic order (unregistered commit shas first)."""
        return [self.versions[v] for v in sort_versions(list(self.versions))]


def fold(artifact: str, events: Iterable[TagEvent]) -> ArtifactState:
    """Fold one artifact's annotated tags into its state, as ``gto show`` (default options).

    A version is active when its latest register/deregister tag registers it (or, never
    registered, it was assigned a stage by commit). A stage points at the active version whose
    latest still-standing assignment to that stage is the newest; an unassign or deregister
    therefore falls back to the previous version still assigned there, if any.
    """
    ordered = sorted(events, key=lambda e: e.order)
    versions: dict[str, VersionState] = {}
    by_commit: dict[str, list[str]] = {}
    deprecated = False
    for ev in ordered:
        if ev.tag.action in (Action.REGISTER, Action.DEREGISTER):
            assert ev.tag.version is not None
            vs = versions.get(ev.tag.version)
            if vs is None:
                vs = versions[ev.tag.version] = VersionState(
                    ev.tag.version, ev.commit, first_seen=ev
                )
                by_commit.setdefault(ev.commit, []).append(ev.tag.version)
            vs.seen = min(vs.seen, (0, ev.timestamp, ev.name))
            if ev.tag.action is Action.REGISTER:
                vs.registered, vs.active, vs.registration, vs.commit = True, True, ev, ev.commit
                vs.created = ev.timestamp
            else:
                vs.active = False
    # The latest assign/unassign per (version, stage): an assign there still stands.
    last: dict[tuple[str, str], TagEvent] = {}
    stage_latest: dict[str, TagEvent] = {}  # insertion order = first appearance of a stage
    event_versions: dict[str, str] = {}
    for ev in ordered:
        action = ev.tag.action
        if action not in (Action.ASSIGN, Action.UNASSIGN):
            continue
        assert ev.tag.stage is not None
        version = _version_at(ev.commit, by_commit, versions)
        vs = versions[version]
        if vs.first_seen is None:
            vs.first_seen = ev
        if vs.registration is None:
            vs.created = ev.timestamp
            vs.seen = min(vs.seen, (1, ev.timestamp, ev.name))
        event_versions[ev.name] = version
        last[(version, ev.tag.stage)] = ev
        stage_latest[ev.tag.stage] = ev
    if ordered:
        deprecated = ordered[-1].tag.action is Action.DEPRECATE
    standing: dict[str, list[tuple[TagEvent, VersionState]]] = {}
    for (version, stage), ev in last.items():
        if ev.tag.action is Action.ASSIGN and versions[version].active:
            standing.setdefault(stage, []).append((ev, versions[version]))
    winners: dict[str, TagEvent] = {}
    winner_version: dict[str, str] = {}
    for stage, candidates in standing.items():
        winners[stage], best = _newest_assignment(candidates)
        winner_version[stage] = best.version
    stages: dict[str, StageState] = {}
    for stage in stage_latest:
        if stage in winners:
            stages[stage] = StageState(stage, winner_version[stage], winners[stage])
            versions[winner_version[stage]].stages.append(stage)
        else:
            stages[stage] = StageState(stage, None, stage_latest[stage])
    return ArtifactState(
        name=artifact,
        events=ordered,
        versions=versions,
        stages=stages,
        event_versions=event_versions,
        deprecated=deprecated,
    )


def _newest_assignment(
    candidates: list[tuple[TagEvent, VersionState]],
) -> tuple[TagEvent, VersionState]:
    """The assignment a stage points at: the newest; within one second, that of the version gto
    created first (gto sorts versions by creation, then stable-sorts the assignments by time and
    reverses both lists, so a tie goes to the earlier-created version, not the higher counter)."""
    newest = max(ev.timestamp for ev, _ in candidates)
    tied = [c for c in candidates if c[0].timestamp == newest]
    return min(tied, key=lambda c: (c[1].created, c[1].seen))


def _version_at(
    commit: str, by_commit: dict[str, list[str]], versions: dict[str, VersionState]
) -> str:
    """The version registered at ``commit`` (gto resolves stage tags by commit).

    A commit without a registered version becomes an unregistered version named by its sha.
    """
    names = by_commit.get(commit)
    if names:
        if len(names) == 1:
            return names[0]
        active = [n for n in names if versions[n].active] or names
        return sort_versions(active)[-1]
    versions.setdefault(commit, VersionState(commit, commit))
    by_commit[commit] = [commit]
    return commit
