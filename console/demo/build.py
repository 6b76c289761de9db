"""Build the demo workspace deterministically: one ``git fast-import`` stream for the whole
history (commits and annotated GTO tags with fixed people and dates), then CI run records and
the console config. Same seed and same ``now`` give a byte-identical git history."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.config.demo_marker import (
    GENERATOR,
    MARKER,
    git_env,
    is_demo_dir,
)
from console.demo import content
from console.demo.story import (
    EXTRA_COMMITS,
    MODELS,
    PEOPLE,
    STAGE_MOVES,
    ModelStory,
    at,
    move_time,
)

FORMAT = 1
HOST = "127.0.0.1"
SCAFFOLD_DAYS = 42.5
GIT_TIMEOUT = 60.0


class DemoError(Exception):
    """The demo could not be built or started; the message says why and what to do."""

    exit_code = 2


@dataclass(frozen=True)
class DemoInfo:
    """What was built: where, which models, the metrics port in the config, and the history."""

    path: Path
    models: tuple[str, ...]
    port: int
    seed: int
    now: datetime
    config_path: Path
    head: str
    commits: int
    tags: tuple[str, ...]
    ci_runs: int


@dataclass
class _Commit:
    when: datetime
    author: str
    subject: str
    files: dict[str, str]
    ci: str = "success"
    ci_note: str = ""
    model: str = ""
    registers: str = ""  # version registered on this commit
    introduces: ModelStory | None = None
    mark: int = 0


@dataclass
class _Tag:
    name: str
    target: _Commit
    tagger: str
    when: datetime
    message: str


@dataclass
class _Plan:
    commits: list[_Commit] = field(default_factory=list)
    tags: list[_Tag] = field(default_factory=list)


def default_now() -> datetime:
    """The current time truncated to the hour (UTC): builds within an hour are identical."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _model_commits(model: ModelStory, now: datetime, seed: int, jitter: _Jitter) -> list[_Commit]:
    out: list[_Commit] = []
    notes: list[str] = []
    for i, v in enumerate(model.versions):
        when = at(now, v.days)
        files = {f"models/{model.name}/params.yaml": content.params_yaml(model, v)}
        if v.train_note or i == 0:
            notes += [v.train_note] if v.train_note else []
            files[f"models/{model.name}/train.py"] = content.train_py(model, notes)
        change = _Commit(when - timedelta(days=0.9) + jitter(), v.author, v.change, files)
        change.model = model.name
        change.introduces = model if i == 0 else None
        out.append(change)
        if v.data is not None:
            data = content.data_files(model, v.data, seed)
            out.append(
                _Commit(
                    when - timedelta(days=0.5) + jitter(),
                    "bob",
                    v.data.reason,
                    data,
                    model=model.name,
                )
            )
        headline = ", ".join(f"{k} {val:g}" for k, val in list(v.metrics.items())[:2])
        out.append(
            _Commit(
                when + jitter(),
                v.author,
                f"{model.name}: retrain for {v.version} ({headline})",
                {f"models/{model.name}/metrics.json": content.metrics_json(v)},
                ci=v.ci,
                ci_note=v.ci_note,
                model=model.name,
                registers=v.version,
            )
        )
    return out


class _Jitter:
    """Seeded offsets so the times look like people's, not a clock's."""

    def __init__(self, rng: random.Random, max_seconds: int) -> None:
        self.rng, self.max = rng, max_seconds

    def __call__(self) -> timedelta:
        return timedelta(seconds=self.rng.randrange(self.max))


def plan_history(now: datetime, seed: int) -> _Plan:
    """Every commit and tag of the demo with its date, in order; checks the story is coherent."""
    rng = random.Random(seed)
    commit_jitter, tag_jitter = _Jitter(rng, 2400), _Jitter(rng, 1200)
    plan = _Plan()
    scaffold = dict(content.SCAFFOLD)
    plan.commits.append(
        _Commit(
            at(now, SCAFFOLD_DAYS), "erin", "Initial layout: DVC, GTO and the CI pipeline", scaffold
        )
    )
    for model in MODELS:
        plan.commits += _model_commits(model, now, seed, commit_jitter)
    for extra in EXTRA_COMMITS:
        plan.commits.append(
            _Commit(
                at(now, extra.days) + commit_jitter(),
                extra.author,
                extra.subject,
                dict(extra.files),
                ci=extra.ci,
            )
        )
    plan.commits.sort(key=lambda c: c.when)
    introduced: list[ModelStory] = []
    for mark, commit in enumerate(plan.commits, start=1):
        commit.mark = mark
        if commit.introduces is not None:
            introduced.append(commit.introduces)
            commit.files["dvc.yaml"] = content.dvc_yaml(introduced)
            commit.files["artifacts.yaml"] = content.artifacts_yaml(introduced)
    registered = {(c.model, c.registers): c for c in plan.commits if c.registers}
    for (name, version), commit in registered.items():
        plan.tags.append(
            _Tag(
                f"{name}@{version}",
                commit,
                commit.author,
                commit.when + timedelta(hours=1.5) + tag_jitter(),
                f"Registering artifact {name} version {version}",
            )
        )
    counters: dict[str, int] = {}
    for move in STAGE_MOVES:  # oldest first: GTO's counter grows per artifact
        counters[move.model] = counters.get(move.model, 0) + 1
        plan.tags.append(
            _Tag(
                f"{move.model}#{move.stage}#{counters[move.model]}",
                registered[(move.model, move.version)],
                move.actor,
                move_time(now, move),
                move.message or f"Assigning stage {move.stage} to {move.model} {move.version}",
            )
        )
    plan.tags.sort(key=lambda t: t.when)
    _check(plan, now)
    return plan


def _check(plan: _Plan, now: datetime) -> None:
    registered_at = {t.target.mark: t.when for t in plan.tags if "@" in t.name}
    for tag in plan.tags:
        if not tag.target.when < tag.when < now:
            raise AssertionError(f"story: tag {tag.name} at {tag.when} is not after its commit")
        if "#" in tag.name and not registered_at[tag.target.mark] < tag.when:
            raise AssertionError(f"story: {tag.name} assigns a version before it is registered")
    if plan.commits[-1].when >= now:
        raise AssertionError("story: a commit lies in the future")


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _who(handle: str, when: datetime) -> bytes:
    return f"{PEOPLE[handle].ident} {int(when.timestamp())} +0000".encode()


def fast_import_stream(plan: _Plan) -> bytes:
    """The whole history as a ``git fast-import`` stream."""
    parts: list[bytes] = []
    for c in plan.commits:
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
    for t in plan.tags:
        parts += [
            f"tag {t.name}\n".encode(),
            b"from :%d\n" % t.target.mark,
            b"tagger " + _who(t.tagger, t.when) + b"\n",
            _data(t.message.encode() + b"\n"),
        ]
    return b"".join(parts)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            input=stdin,
            capture_output=True,
            env=git_env(),
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise DemoError("git is not installed; the demo needs git >= 2.32") from None
    except subprocess.TimeoutExpired:
        raise DemoError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s in {repo}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DemoError(f"git {args[0]} failed in {repo}: {err or done.returncode}")
    return done.stdout.decode()


def _prepare(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise DemoError(f"{path} is a file; give the demo a folder of its own")
    if path.is_dir() and any(path.iterdir()):
        if not is_demo_dir(path):
            raise DemoError(
                f"{path} is not empty and is not a cd4ml-console demo (no {MARKER} in it); "
                "pick a new or empty folder, e.g. `cd4ml-console demo /tmp/cd4ml-demo`"
            )
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def build_demo(
    dir: Path, *, seed: int = 7, now: datetime | None = None, port: int | None = None
) -> DemoInfo:
    """Build (or rebuild over a previous demo) the demo workspace in ``dir``. The config's
    metrics URL gets ``port``, by default one free now: a fixed port on a shared bastion is
    another user's demo server, whose answers `doctor` would take for this one's."""
    from console.demo.ci import write_ci_runs

    path = Path(dir).expanduser().resolve()
    now = (now or default_now()).astimezone(UTC).replace(microsecond=0)
    plan = plan_history(now, seed)
    _prepare(path)
    _git(path, "init", "-q", "-b", "main")
    marks = path / ".git" / "demo-marks"
    _git(path, "fast-import", "--quiet", f"--export-marks={marks}", stdin=fast_import_stream(plan))
    shas = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark.lstrip(":"))] = sha
    marks.unlink()
    _git(path, "reset", "-q", "--hard", "main")
    runs = write_ci_runs(path / content.RUNS_DIR, plan.commits, shas, seed)
    port = free_port() if port is None else port
    config_path = path / content.CONFIG_NAME
    config_path.write_text(content.config_toml(port, seed), encoding="utf-8")
    marker = {
        "generator": GENERATOR,
        "format": FORMAT,
        "seed": seed,
        "now": content.iso(now),
        "root_commit": shas[plan.commits[0].mark],
    }
    (path / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    from console.demo.seed import seed_demo_audit

    seed_demo_audit(path, now)
    return DemoInfo(
        path=path,
        models=tuple(m.name for m in MODELS),
        port=port,
        seed=seed,
        now=now,
        config_path=config_path,
        head=shas[plan.commits[-1].mark],
        commits=len(plan.commits),
        tags=tuple(sorted(t.name for t in plan.tags)),
        ci_runs=runs,
    )


def read_marker(path: Path) -> dict[str, object]:
    """The demo marker of ``path`` (seed, build time); DemoError when it is not a demo."""
    if not is_demo_dir(path):
        raise DemoError(f"{path} is not a cd4ml-console demo; build one with `cd4ml-console demo`")
    data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    return dict(data)
