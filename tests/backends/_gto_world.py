"""A registry built only by the ``gto`` CLI, as a gto user's repository looks.

Seven artifacts, stages dev/staging/prod, old counter-less tags next to ``#N`` ones, an artifact
deprecated while it held prod, a stage pulled on purpose (``gto deprecate A VERSION STAGE``), a
deregistered version, a ``dir:name`` artifact, two assignments in the same second, a candidate
whose commit is five commits behind production's, and an artifact only in ``artifacts.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _gto_cli import gto_write

T0 = 1_710_000_000  # 2024-03-09T16:00:00Z, after the repository's commits
STAGES = ["dev", "staging", "prod"]
ARTIFACTS_YAML = (
    "churn:\n  type: model\n  description: Churn propensity\n"
    "onlyyaml:\n  type: model\n  description: Described, never registered\n"
)


@dataclass(frozen=True)
class World:
    """The repository and the commit of each step's name."""

    repo: Any
    commits: list[str]
    tie_at: int  # the second in which ranker's two prod assignments were made


def _steps(c: list[str]) -> list[tuple[str, list[str]]]:
    def assign(name: str, version: str, stage: str, *more: str) -> list[str]:
        return ["assign", name, "--version", version, "--stage", stage, *more]

    return [
        ("Alice", ["register", "churn", c[0], "--version", "v1.0.0"]),
        ("Alice", ["register", "churn", c[1], "--version", "v1.1.0"]),
        ("Bob", ["register", "churn", c[2], "--version", "v1.2.0"]),
        ("Bob", ["register", "churn", c[3], "--version", "v1.3.0"]),
        ("Carol", assign("churn", "v1.0.0", "prod", "--simple", "true")),  # churn#prod (old style)
        ("Carol", assign("churn", "v1.0.0", "staging", "--simple", "true")),
        ("Carol", assign("churn", "v1.1.0", "staging")),
        ("Dan", assign("churn", "v1.1.0", "prod")),
        ("Dan", assign("churn", "v1.2.0", "staging")),
        ("Dan", assign("churn", "v1.3.0", "dev")),
        ("Erin", ["deprecate", "churn", "v1.1.0", "staging"]),  # pulled from staging on purpose
        ("Erin", ["deprecate", "churn", "v1.3.0"]),  # deregistered: dev empties
        ("Alice", ["register", "fraud", c[4], "--version", "v0.1.0"]),
        ("Alice", assign("fraud", "v0.1.0", "prod")),
        ("Erin", ["deprecate", "fraud"]),  # retired while it held prod
        ("Bob", ["register", "nlp:bert", c[5], "--version", "v0.1.0"]),
        ("Bob", assign("nlp:bert", "v0.1.0", "staging")),
        ("Alice", ["register", "legacy", c[0], "--version", "v0.9.0"]),
        ("Alice", assign("legacy", "v0.9.0", "dev", "--simple", "true")),
        ("Bob", ["register", "search", c[3], "--version", "v1.5.0"]),
        ("Bob", ["register", "search", c[8], "--version", "v2.0.0"]),
        ("Carol", assign("search", "v2.0.0", "prod")),
        ("Alice", ["register", "ranker", c[6], "--version", "v1.0.0"]),
        ("Alice", ["register", "ranker", c[7], "--version", "v2.0.0"]),
    ]


def build_gto_world(git_repo: Any, *, dot_gto: bool, name: str = "gto-world") -> World:
    """Commits by Alice and Bob, then every registry event made with the ``gto`` CLI."""
    repo = git_repo(name)
    notes = "".join(f"step {i}\n" for i in range(9))  # grows by a line a commit
    shas = [
        repo.commit(f"step {i}", {"model.py": f"# v{i}\n", "NOTES": notes[: 7 * (i + 1)]},
                    author=("Alice", "Bob")[i % 2])
        for i in range(9)
    ]  # fmt: skip
    files = {"artifacts.yaml": ARTIFACTS_YAML}
    if dot_gto:  # gto reads it from the work tree; committed, so `git status` stays clean
        files[".gto"] = "stages: [dev, staging, prod]\n"
    repo.commit("describe the artifacts", files)
    steps = [(T0 + 10 * i, actor, args) for i, (actor, args) in enumerate(_steps(shas))]
    tie = steps[-1][0] + 10
    steps += [
        (tie, "Carol", ["assign", "ranker", "--version", "v1.0.0", "--stage", "prod"]),
        (tie, "Dan", ["assign", "ranker", "--version", "v2.0.0", "--stage", "prod"]),
    ]
    gto_write(repo, steps)
    return World(repo=repo, commits=shas, tie_at=tie)
