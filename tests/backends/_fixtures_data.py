"""Test helpers for the data/ci/metrics/deploy backends: a tiny git repo builder and DVC files
written by the real tool (dvc 3.67.1: `dvc add data/churn.csv`, `dvc add data/images`,
`dvc stage add ... && dvc repro`), copied verbatim."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from console.config import ConsoleConfig
from console.plugins import BackendContext

# `dvc add data/churn.csv` (a file)
DVC_FILE = """\
outs:
- md5: 44aaa76ca9ab5235227b582bd4daf446
  size: 23
  hash: md5
  path: churn.csv
"""

# `dvc add data/images` (a directory)
DVC_DIR = """\
outs:
- md5: b9a53d961b6b47a74b39cd21b39dd6ca.dir
  size: 9
  nfiles: 2
  hash: md5
  path: images
"""

# `dvc repro` of two stages, train_churn and featurize_fraud
DVC_LOCK = """\
schema: '2.0'
stages:
  train_churn:
    cmd: python3 train.py
    deps:
    - path: data/churn.csv
      hash: md5
      md5: 44aaa76ca9ab5235227b582bd4daf446
      size: 23
    - path: train.py
      hash: md5
      md5: 4f651e581b31e8f1ab028d03f52575df
      size: 114
    params:
      params.yaml:
        train.epochs: 3
        train.lr: 0.1
    outs:
    - path: metrics.json
      hash: md5
      md5: b46fa56a138b1fbe26ed839ed2375ae0
      size: 26
    - path: model.pkl
      hash: md5
      md5: 6f8f57715090da2632453988d9a1501b
      size: 1
  featurize_fraud:
    cmd: python3 feat.py
    deps:
    - path: data/images
      hash: md5
      md5: b9a53d961b6b47a74b39cd21b39dd6ca.dir
      size: 9
      nfiles: 2
    - path: feat.py
      hash: md5
      md5: 267d9ad3e404122f614199b7c9774a55
      size: 112
    outs:
    - path: feats
      hash: md5
      md5: 02dc0402141edb6fd22e60390d331815.dir
      size: 3
      nfiles: 2
"""

_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A throwaway git repository: write files, commit, get the sha."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {**os.environ, **_ENV}
        done = subprocess.run(
            ["git", "-C", str(self.path), *args], env=env, check=True, capture_output=True
        )
        return done.stdout.decode().strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or delete, with None) files, commit everything, return the full sha."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


def context(workspace: Path, timeout: float = 5.0, **config: Any) -> BackendContext:
    """A BackendContext over ``workspace`` with an optional ConsoleConfig built from ``config``."""
    cfg = ConsoleConfig.model_validate(config)
    return BackendContext(
        workspace=workspace, state_dir=workspace / ".cd4ml", config=cfg, timeout=timeout
    )
