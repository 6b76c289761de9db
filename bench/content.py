"""What the benchmark workspaces hold: the parameters (Spec), file contents, CI run records and
the console config. Pure functions of the Spec and seeded RNGs."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

GENERATOR_VERSION = 1  # bump when the generated content changes: the cache key includes it
STAGES = ("staging", "production")
KEY_METRICS = ("auc", "f1", "latency_p95_ms")
PEOPLE = (
    ("Ada Lovelace", "ada@example.com"),
    ("Bob Okafor", "bob@example.com"),
    ("Carmen Ruiz", "carmen@example.com"),
    ("Dev Patel", "dev@example.com"),
    ("Erin Novak", "erin@example.com"),
    ("Farid Haddad", "farid@example.com"),
)
TASKS = ("fraud scoring", "churn", "pricing", "ranking", "forecast", "anomaly")
DATA_EVERY = 10  # a data change (new DVC hash, sometimes a new column) every N versions
CI_FAIL_EVERY = 9  # every Nth version's CI run fails its evaluation


@dataclass(frozen=True)
class Spec:
    """What to generate: how many models, how many versions each, and the seed."""

    name: str
    models: int
    versions: int
    seed: int = 1
    artifacts_index: bool = True  # write GTO's artifacts.yaml listing every model

    @property
    def key(self) -> str:
        index = "" if self.artifacts_index else "-noidx"
        return (
            f"{self.name}-m{self.models}-v{self.versions}-s{self.seed}{index}-g{GENERATOR_VERSION}"
        )

    def model_name(self, i: int) -> str:
        return f"model-{i:04d}"

    @property
    def model_names(self) -> list[str]:
        return [self.model_name(i) for i in range(self.models)]


SMALL = Spec("small", models=10, versions=12)
WIDE = Spec("wide", models=1000, versions=5)
WIDE_2000 = Spec("wide", models=2000, versions=5)
DEEP = Spec("deep", models=1, versions=10_000)
SPECS = {s.name: s for s in (SMALL, WIDE, DEEP)}  # by name: WIDE_2000 is a size of "wide"


def version_name(j: int) -> str:
    """The j-th version (0-based) as semver: v1.0.0, v1.0.1, ... v1.0.99, v1.1.0, ..."""
    return f"v{1 + j // 10_000}.{(j // 100) % 100}.{j % 100}"


def rng(spec: Spec, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (spec.seed, *parts)))


def params_yaml(spec: Spec, model: str, j: int) -> str:
    r = rng(spec, "params", model, j)
    return (
        f"# Training parameters of {model}\n"
        "train:\n"
        f"  learning_rate: {r.choice((0.01, 0.03, 0.05, 0.1))}\n"
        f"  n_estimators: {100 + 50 * r.randrange(10)}\n"
        f"  max_depth: {r.randrange(3, 12)}\n"
        f"  subsample: {r.choice((0.6, 0.8, 1.0))}\n"
        "split:\n"
        "  test_size: 0.2\n"
        f"  seed: {spec.seed}\n"
    )


def metrics_json(spec: Spec, model: str, j: int) -> str:
    r = rng(spec, "metrics", model, j)
    drift = min(j, 200) * 0.0004
    doc = {
        "auc": round(0.80 + drift + r.uniform(-0.01, 0.01), 4),
        "f1": round(0.60 + drift + r.uniform(-0.02, 0.02), 4),
        "latency_p95_ms": round(12 + r.uniform(0, 8), 2),
        "eval": {"rows": 20_000 + 10 * j, "seconds": round(r.uniform(30, 90), 1)},
    }
    return json.dumps(doc, indent=2) + "\n"


def data_files(spec: Spec, model: str, snapshot: int) -> dict[str, str]:
    """data/M.dvc (DVC 3 style), data/M/schema.json and data/M/stats.json for a snapshot."""
    r = rng(spec, "data", model, snapshot)
    columns = [f"feature_{k:02d}" for k in range(8 + snapshot % 5)]
    rows = 100_000 + 5_000 * snapshot + r.randrange(1000)
    size = rows * (14 * len(columns) + r.randrange(10))
    digest = f"{r.getrandbits(128):032x}"
    dvc = (
        "outs:\n"
        f"- md5: {digest}.dir\n"
        f"  size: {size}\n"
        f"  nfiles: {4 + snapshot % 3}\n"
        "  hash: md5\n"
        f"  path: {model}\n"
    )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{model} training rows",
        "type": "object",
        "properties": {c: {"type": "number"} for c in columns} | {"label": {"type": "integer"}},
        "required": [*columns, "label"],
    }
    stats = {"rows": rows, "files": 4 + snapshot % 3, "bytes": size}
    return {
        f"data/{model}.dvc": dvc,
        f"data/{model}/schema.json": json.dumps(schema, indent=2) + "\n",
        f"data/{model}/stats.json": json.dumps(stats, indent=2) + "\n",
    }


def artifacts_yaml(spec: Spec) -> str:
    lines = []
    for i, m in enumerate(spec.model_names):
        lines += [
            f"{m}:",
            "  type: model",
            f"  path: models/{m}/model.pkl",
            f"  description: Benchmark model {i} ({TASKS[i % len(TASKS)]})",
            "  labels:",
            f"  - {TASKS[i % len(TASKS)]}",
        ]
    return "\n".join(lines) + "\n"


def config_toml(spec: Spec) -> str:
    """The console config (valid against console/config/model.py; checked by the tests).

    No metrics backend (nothing to scrape) and a long refresh interval, so the figures measure
    the console, not a timer firing in the middle of a measurement.
    """
    out = [
        f"# cd4ml-console benchmark workspace {spec.key} (generated by bench/workspaces.py)",
        f"stages = {json.dumps(list(STAGES))}",
        'production_stage = "production"',
        "timeout_seconds = 30",
        "",
        "[workspace]",
        'path = "."',
        f'name = "bench {spec.name}"',
        'state_dir = ".cd4ml"',
        "",
        "[backends.code]",
        'type = "git"',
        "[backends.registry]",
        'type = "gto"',
        "[backends.data]",
        'type = "dvc"',
        "[backends.ci]",
        'type = "runs-folder"',
        'path = ".ci-runs"',
        "[backends.audit]",
        'type = "sqlite-audit"',
        "",
    ]
    for i, m in enumerate(spec.model_names):
        out += [
            f'[models."{m}"]',
            f'description = "Benchmark model {i} ({TASKS[i % len(TASKS)]})"',
            f"key_metrics = {json.dumps(list(KEY_METRICS))}",
            "",
        ]
    out += [
        "[metrics.auc]",
        'direction = "higher"',
        "[metrics.f1]",
        'direction = "higher"',
        "[metrics.latency_p95_ms]",
        'direction = "lower"',
        'unit = "ms"',
        "",
        "[policy.stages.production]",
        "required_approvals = 1",
        "require_ci_success = true",
        "",
        "[ui]",
        'theme = "dark"',
        "refresh_seconds = 3600",
        "",
    ]
    return "\n".join(out)


def ci_record(
    run_id: int, sha: str, when: datetime, author: int, subject: str, j: int
) -> dict[str, object]:
    """One run record (docs/runs-folder.md) for the commit of version ``j``."""
    failing = j % CI_FAIL_EVERY == CI_FAIL_EVERY - 1
    start = when + timedelta(seconds=90)
    jobs = []
    clock = start
    for name, seconds in (("lint", 30), ("unit-tests", 70), ("train", 300), ("evaluate", 60)):
        end = clock + timedelta(seconds=seconds)
        conclusion = "failure" if failing and name == "evaluate" else "success"
        jobs.append(
            {
                "name": name,
                "status": "completed",
                "conclusion": conclusion,
                "started_at": iso(clock),
                "finished_at": iso(end),
            }
        )
        clock = end
    return {
        "id": str(run_id),
        "pipeline": "train-and-evaluate",
        "commit": sha,
        "branch": "main",
        "event": "push",
        "status": "completed",
        "conclusion": "failure" if failing else "success",
        "started_at": iso(start),
        "finished_at": iso(clock),
        "url": f"https://ci.example.com/bench/runs/{run_id}",
        "actor": PEOPLE[author][0],
        "title": subject,
        "jobs": jobs,
    }


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
