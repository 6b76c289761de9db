"""Fixtures: a real workspace (git repo with GTO tags, DVC-style files, CI records, config),
the CLI with the release commands, and acting as another OS user inside the test process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from console.domain import Actor

EPOCH = 1_763_000_000  # 2025-11-13


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", LC_ALL="C"
    )
    env.update(extra or {})
    return env


CONFIG = """
stages = ["staging", "production"]
production_stage = "production"

[metrics.auc]
direction = "higher"

[policy.stages.production]
required_approvals = {approvals}
approver_roles = ["release_manager", "admin"]
require_ci_success = true
schema_change_needs_ack = true
metric_bounds = [{{ metric = "auc", min = 0.8, max_regression = 0.02 }}]

[policy.stages.staging]
require_ci_success = false

[policy.rollback]
confirm_model_name = true

[roles]
admin = ["erin"]
release_manager = ["dev", "rita", "erin", "alice"]
viewer = ["vic"]
default = "viewer"
{extra}
"""


@dataclass
class Workspace:
    """A workspace on disk: ``path`` with commits ``c1``, ``c2``, ``c3``."""

    path: Path
    commits: dict[str, str]
    tick: int = 0

    def git(self, *args: str, who: str = "Alice Chen <alice.chen@example.com>") -> str:
        name, email = who[: who.index("<")].strip(), who[who.index("<") + 1 : -1]
        self.tick += 60
        stamp = f"@{EPOCH + self.tick} +0000"
        env = git_env({
            "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
        })  # fmt: skip
        done = subprocess.run(["git", "-C", str(self.path), *args], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout.strip()

    def tags(self) -> list[str]:
        return self.git("tag", "--list").splitlines()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _schema(fields: list[str]) -> str:
    return json.dumps({"properties": {f: {"type": "number"} for f in fields}})


def make_workspace(root: Path, *, approvals: int = 1, extra: str = "") -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace(path=root, commits={})
    ws.git("init", "-q", "-b", "main")
    _write(root / ".gitignore", "/.cd4ml/\n/.ci-runs/\n")
    versions = [("c1", 0.90, ["a", "b"]), ("c2", 0.91, ["a", "b"]), ("c3", 0.85, ["a", "b"]),
                ("c4", 0.93, ["a", "c"])]  # fmt: skip
    for name, auc, fields in versions:
        _write(root / "models/m/metrics.json", json.dumps({"auc": auc}))
        _write(root / "models/m/params.yaml", f"train:\n  lr: {auc / 10:.3f}\n")
        _write(root / "data/m/schema.json", _schema(fields))
        ws.git("add", "-A")
        ws.git("commit", "-q", "-m", f"m: train {name}")
        ws.commits[name] = ws.git("rev-parse", "HEAD")
    registrar = "Alice Chen <alice.chen@example.com>"
    for i, name in enumerate(("c1", "c2", "c3", "c4")):
        ws.git("tag", "-a", f"m@v1.{i}.0", ws.commits[name], "-m", "register", who=registrar)
    ws.git("tag", "-a", "m#production#1", ws.commits["c1"], "-m", "release",
           who="Dev Patel <dev.patel@example.com>")  # fmt: skip
    runs = root / ".ci-runs"
    for i, sha in enumerate(ws.commits.values()):
        record = {"id": i + 1, "pipeline": "train", "commit": sha, "actor": "ci",
                  "status": "completed", "conclusion": "success",
                  "started_at": "2025-11-13T10:00:00Z", "finished_at": "2025-11-13T10:05:00Z",
                  "url": f"https://ci.example/{i + 1}"}  # fmt: skip
        _write(runs / f"run-{i + 1}.json", json.dumps(record))
    _write(root / "cd4ml-console.toml", CONFIG.format(approvals=approvals, extra=extra))
    return ws


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def act_as(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make console.identity report another OS user for the rest of the test (in-process)."""

    def switch(user: str) -> None:
        monkeypatch.setattr(
            "console.identity.current_actor",
            lambda *a, **k: Actor(user=user, ssh_client="192.0.2.10"),
        )

    return switch


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Invoke ``cd4ml-console ARGS`` in-process; stdout and stderr are kept apart."""
    from console.cli.group import cli
    from console.cli.release import register

    register(cli)
    monkeypatch.setenv("CD4ML_LOG_FILE", str(tmp_path / "console.log"))

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
