"""The stages of a repository's GTO registry, for a workspace with no config file.

``.gto``'s ``stages`` when it lists them (gto refuses any other), else every stage named by an
annotated stage tag, in lifecycle order; else the console's default. The production stage is
the one named ``production`` or ``prod``, else the last. See docs/configuration.md.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from console.git.cmd import git_env
from console.git.gto_tags import Action, parse_tag
from console.git.yamlread import safe_load

# Known names in the order a model goes through them; others sort alphabetically after these
# (before the production stage, which always comes last).
LIFECYCLE = (
    "dev",
    "develop",
    "development",
    "test",
    "testing",
    "qa",
    "uat",
    "stage",
    "staging",
    "preprod",
    "pre-prod",
    "canary",
    "shadow",
    "prod",
    "production",
)
PRODUCTION_NAMES = ("production", "prod")
DEFAULT_STAGES = ("staging", "production")
TIMEOUT = 10.0


@dataclass(frozen=True)
class RepoStages:
    """The stages, the production stage among them, and where they came from (for doctor)."""

    stages: tuple[str, ...]
    production: str
    origin: str


def production_of(stages: Sequence[str]) -> str:
    """``production``, else ``prod``, else the last stage."""
    return next((s for s in PRODUCTION_NAMES if s in stages), stages[-1])


def lifecycle_order(names: Iterable[str]) -> list[str]:
    """Known names in lifecycle order, then the others alphabetically, the production one last."""
    unique = sorted(set(names))
    if not unique:
        return []
    prod = production_of(unique)

    def key(name: str) -> tuple[int, int, str]:
        if name == prod:
            return (2, 0, "")
        if name in LIFECYCLE:
            return (0, LIFECYCLE.index(name), "")
        return (1, 0, name)

    return sorted(unique, key=key)


def allowed_stages(repo: Path) -> list[str] | None:
    """``stages`` from the ``.gto`` config in the work tree (where gto reads it), None if unset."""
    try:
        raw = safe_load((repo / ".gto").read_text())
    except (OSError, yaml.YAMLError):
        return None
    stages = raw.get("stages") if isinstance(raw, dict) else None
    return [str(s) for s in stages] if isinstance(stages, list) else None


def tag_stages(repo: Path) -> set[str]:
    """Stages named by the annotated GTO stage tags of ``repo`` (gto ignores lightweight ones);
    empty when git can not read them (the registry backend then says why)."""
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "for-each-ref",
                "--format=%(objecttype) %(refname)",
                "refs/tags",
            ],
            capture_output=True,
            timeout=TIMEOUT,
            env=git_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    stages: set[str] = set()
    for line in out.stdout.decode(errors="replace").splitlines():
        kind, _, ref = line.partition(" ")
        if kind != "tag" or "#" not in ref:  # a stage tag always has one: parse only those
            continue
        parsed = parse_tag(ref.removeprefix("refs/tags/"))
        if parsed and parsed.stage and parsed.action in (Action.ASSIGN, Action.UNASSIGN):
            stages.add(parsed.stage)
    return stages


def repo_stages(repo: Path) -> RepoStages:
    """The stages a gto user of ``repo`` works with (see the module docstring)."""
    listed = list(dict.fromkeys(allowed_stages(repo) or ()))
    if listed:
        return RepoStages(tuple(listed), production_of(listed), f".gto at {repo}")
    used = lifecycle_order(tag_stages(repo))
    if used:
        return RepoStages(tuple(used), production_of(used), f"the stage tags in {repo}")
    origin = f"the default (no stages in .gto and no stage tags in {repo})"
    return RepoStages(DEFAULT_STAGES, production_of(DEFAULT_STAGES), origin)
