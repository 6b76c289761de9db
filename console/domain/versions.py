"""Semantic version parsing and ordering (``v1.10.0`` sorts after ``v1.9.0``)."""

from __future__ import annotations

import re
from functools import lru_cache, total_ordering
from typing import Any

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@total_ordering
class SemVer:
    """A parsed semantic version; ordering follows semver.org precedence rules."""

    __slots__ = ("build", "major", "minor", "patch", "pre", "text")

    def __init__(self, text: str) -> None:
        match = _SEMVER.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version like v1.2.3")
        self.text = text
        self.major = int(match["major"])
        self.minor = int(match["minor"])
        self.patch = int(match["patch"])
        self.pre: tuple[str, ...] = tuple(match["pre"].split(".")) if match["pre"] else ()
        self.build = match["build"] or ""

    @staticmethod
    def is_valid(text: str) -> bool:
        return _SEMVER.match(text) is not None

    def _key(self) -> tuple[object, ...]:
        # A release sorts after any of its pre-releases; numeric identifiers sort
        # numerically and before alphanumeric ones.
        pre_key: tuple[object, ...]
        if not self.pre:
            pre_key = ((1,),)
        else:
            pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
            pre_key = ((0, pre_key),)
        return (self.major, self.minor, self.patch, pre_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"SemVer({self.text!r})"

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=65536)
def version_key(text: str) -> tuple[Any, ...]:
    """Sort key for version strings: semantic versions in semver order, then others by text.

    Non-semver identifiers (MLflow's integer versions) sort numerically when they are
    plain integers. The key is a tuple of plain ints, strings and tuples, so sorting 10,000
    versions compares in C, never calling back into Python.
    """
    try:
        return (1, *SemVer(text)._key())
    except ValueError:
        pass
    if text.isdigit():
        return (0, int(text), "")
    return (0, -1, text)


def sort_versions(texts: list[str]) -> list[str]:
    """Return ``texts`` sorted oldest to newest by version precedence."""
    return sorted(texts, key=version_key)


def other_spelling(text: str) -> str:
    """The same semantic version written with or without its ``v`` (``1.2.0`` <-> ``v1.2.0``):
    gto writes the ``v``, people often leave it out. Other names (MLflow's ``3``) are kept."""
    if not SemVer.is_valid(text):
        return text
    return text[1:] if text[:1] in "vV" else f"v{text}"
