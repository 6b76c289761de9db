"""Deterministic benchmark workspaces, each written with ONE ``git fast-import`` stream.

A workspace is a git repo with, per model, ``models/M/params.yaml``, ``models/M/metrics.json``,
``data/M.dvc`` and ``data/M/schema.json`` (+ ``stats.json``); GTO registration and stage tags as
annotated tags; one CI run record per version in ``.ci-runs/``; and a ``cd4ml-console.toml``.
Built workspaces are cached under ``bench/.work/`` keyed by their parameters.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.content import (
    DATA_EVERY,
    DEEP,
    KEY_METRICS,
    PEOPLE,
    SMALL,
    SPECS,
    STAGES,
    WIDE,
    WIDE_2000,
    Spec,
    artifacts_yaml,
    ci_record,
    config_toml,
    data_files,
    metrics_json,
    params_yaml,
    rng,
    version_name,
)
from console.demo.build import git_env

WORK_DIR = Path(__file__).resolve().parent / ".work"
MARKER = ".bench-workspace.json"
BASE = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
COMMIT_SPACING = timedelta(minutes=7)
__all__ = [
    "DEEP", "KEY_METRICS", "SMALL", "SPECS", "WIDE", "WIDE_2000", "Built", "Spec", "build",
    "ensure", "version_name",
]  # fmt: skip


@dataclass(frozen=True)
class Built:
    """A generated workspace on disk and what it holds."""

    path: Path
    spec: Spec
    head: str
    commits: int
    tags: int
    ci_runs: int
    build_seconds: float

    @property
    def config(self) -> Path:
        return self.path / "cd4ml-console.toml"


# -- history -------------------------------------------------------------------------------


@dataclass
class _Commit:
    mark: int
    when: datetime
    author: int
    subject: str
    files: dict[str, str]
    model: str = ""
    j: int = -1


@dataclass
class _Tag:
    name: str
    mark: int
    tagger: int
    when: datetime
    message: str


def _stage_moves(versions: int) -> list[tuple[int, int, str]]:
    """(trigger version, version assigned, stage), oldest first: every ``step`` versions the
    newest goes to staging and the previous staging version goes to production."""
    step = max(2, min(50, versions // 3))
    moves: list[tuple[int, int, str]] = []
    previous: int | None = None
    for j in range(step - 1, versions, step):
        if previous is not None:
            moves.append((j, previous, "production"))
        moves.append((j, j, "staging"))
        previous = j
    return moves


def plan(spec: Spec) -> tuple[list[_Commit], list[_Tag]]:
    """Every commit and tag of the workspace, in order."""
    people = rng(spec, "people")
    owner = {m: people.randrange(len(PEOPLE)) for m in spec.model_names}
    clock = iter(BASE + COMMIT_SPACING * k for k in range(10**9))
    scaffold: dict[str, str] = {
        "README.md": f"# Benchmark workspace {spec.key}\n",
        ".gto": "types:\n- model\nstages:\n" + "".join(f"- {s}\n" for s in STAGES),
        ".gitignore": "/.cd4ml/\n/.ci-runs/\n/cd4ml-console.toml\n",
    }
    if spec.artifacts_index:
        scaffold["artifacts.yaml"] = artifacts_yaml(spec)
    for m in spec.model_names:
        scaffold.update(data_files(spec, m, 0))
        scaffold[f"models/{m}/params.yaml"] = params_yaml(spec, m, -1)
    commits = [_Commit(1, next(clock), 0, "Initial layout: models, DVC data, GTO", scaffold)]
    tags: list[_Tag] = []
    by_version: dict[tuple[str, int], _Commit] = {}
    for j in range(spec.versions):
        for m in spec.model_names:
            files = {
                f"models/{m}/params.yaml": params_yaml(spec, m, j),
                f"models/{m}/metrics.json": metrics_json(spec, m, j),
            }
            subject = f"{m}: retrain for {version_name(j)}"
            if j and j % DATA_EVERY == 0:
                files.update(data_files(spec, m, j // DATA_EVERY))
                subject += " on new data"
            author = owner[m] if j % 4 else (owner[m] + 1) % len(PEOPLE)
            c = _Commit(len(commits) + 1, next(clock), author, subject, files, m, j)
            commits.append(c)
            by_version[(m, j)] = c
            tags.append(
                _Tag(
                    f"{m}@{version_name(j)}",
                    c.mark,
                    author,
                    c.when + timedelta(minutes=3),
                    f"Registering artifact {m} version {version_name(j)}",
                )
            )
    for m in spec.model_names:
        for counter, (trigger, j, stage) in enumerate(_stage_moves(spec.versions), start=1):
            when = by_version[(m, trigger)].when + timedelta(minutes=5, seconds=counter % 60)
            tags.append(
                _Tag(
                    f"{m}#{stage}#{counter}",
                    by_version[(m, j)].mark,
                    (owner[m] + 2) % len(PEOPLE),
                    when,
                    f"Assigning stage {stage} to {m} {version_name(j)}",
                )
            )
    tags.sort(key=lambda t: (t.when, t.name))
    return commits, tags


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _who(person: int, when: datetime) -> bytes:
    name, email = PEOPLE[person]
    return f"{name} <{email}> {int(when.timestamp())} +0000".encode()


def fast_import_stream(commits: list[_Commit], tags: list[_Tag]) -> bytes:
    """The whole history as one ``git fast-import`` stream."""
    parts: list[bytes] = []
    for c in commits:
        parts += [
            b"commit refs/heads/main\n",
            b"mark :%d\n" % c.mark,
            b"author " + _who(c.author, c.when) + b"\n",
            b"committer " + _who(c.author, c.when) + b"\n",
            _data(c.subject.encode() + b"\n"),
        ]
        for path in sorted(c.files):
            parts += [f"M 100644 inline {path}\n".encode(), _data(c.files[path].encode())]
        parts.append(b"\n")
    for t in tags:
        parts += [
            f"tag {t.name}\n".encode(),
            b"from :%d\n" % t.mark,
            b"tagger " + _who(t.tagger, t.when) + b"\n",
            _data(t.message.encode() + b"\n"),
        ]
    return b"".join(parts)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        env=git_env(),
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"git {args[0]} failed in {repo}: {err or done.returncode}")
    return done.stdout.decode()


def build(spec: Spec, path: Path) -> Built:
    """Generate ``spec`` into ``path`` (which must not exist or be empty)."""
    started = time.perf_counter()
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty")
    path.mkdir(parents=True, exist_ok=True)
    commits, tags = plan(spec)
    _git(path, "init", "-q", "-b", "main")
    marks_file = path / ".git" / "bench-marks"
    _git(
        path,
        "fast-import",
        "--quiet",
        f"--export-marks={marks_file}",
        stdin=fast_import_stream(commits, tags),
    )
    shas: dict[int, str] = {}
    for line in marks_file.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark.lstrip(":"))] = sha
    marks_file.unlink()
    _git(path, "reset", "-q", "--hard", "main")
    runs = path / ".ci-runs"
    runs.mkdir()
    run_id = 10_000
    for c in commits:
        if c.j < 0:
            continue
        record = ci_record(run_id, shas[c.mark], c.when, c.author, c.subject, c.j)
        (runs / f"run-{run_id}.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        run_id += 1
    (path / "cd4ml-console.toml").write_text(config_toml(spec), encoding="utf-8")
    built = Built(
        path=path,
        spec=spec,
        head=shas[commits[-1].mark],
        commits=len(commits),
        tags=len(tags),
        ci_runs=run_id - 10_000,
        build_seconds=time.perf_counter() - started,
    )
    info = {
        "key": spec.key,
        "head": built.head,
        "commits": built.commits,
        "tags": built.tags,
        "ci_runs": built.ci_runs,
        "build_seconds": round(built.build_seconds, 2),
    }
    (path / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return built


def ensure(spec: Spec, work_dir: Path = WORK_DIR) -> Built:
    """The cached workspace for ``spec``, built first when missing or incomplete."""
    path = work_dir / spec.key
    marker = path / MARKER
    if marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        return Built(
            path=path,
            spec=spec,
            head=info["head"],
            commits=info["commits"],
            tags=info["tags"],
            ci_runs=info["ci_runs"],
            build_seconds=info["build_seconds"],
        )
    if path.exists():
        shutil.rmtree(path)  # a build that did not finish
    return build(spec, path)
