"""File contents of the demo workspace: params, metrics, DVC files, schemas, the GTO index,
the console config and CI run records. Pure functions of the story and a seeded RNG."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml

from console.demo.story import (
    ADMINS,
    METRICS,
    MODELS,
    PIPELINE,
    RELEASE_MANAGERS,
    STAGES,
    DataSnapshot,
    ModelStory,
    VersionStory,
)

CONFIG_NAME = "cd4ml-console.toml"
MODEL_SLOS: dict[str, dict[str, float]] = {"fraud-detector": {"p95_ms": 120}}  # payments
RUNS_DIR = ".ci-runs"
CI_URL = "https://ci.example.com/cd4ml-demo/runs"


def dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


def params_yaml(model: ModelStory, version: VersionStory) -> str:
    return f"# Training parameters of {model.name}\n" + dump_yaml(version.params)


def metrics_json(version: VersionStory) -> str:
    return dump_json(version.metrics)


def train_py(model: ModelStory, notes: list[str]) -> str:
    lines = [
        f'"""Train {model.name} ({model.task}) from the DVC-tracked data and params.yaml."""',
        "",
        "import json",
        "from pathlib import Path",
        "",
        "import yaml",
        "",
        f"HERE = Path('models/{model.name}')",
        "",
        "",
        "def main() -> None:",
        "    params = yaml.safe_load((HERE / 'params.yaml').read_text())",
        f"    features = [c for c in json.loads(Path('data/{model.name}/schema.json').read_text())"
        "['properties']]",
        *(f"    # {note}" for note in notes),
        "    model = fit(features, params['train'])  # noqa: F821 - provided by the team library",
        "    (HERE / 'metrics.json').write_text(json.dumps(evaluate(model), indent=2))  # noqa: F821",
        "",
        "",
        "if __name__ == '__main__':",
        "    main()",
        "",
    ]
    return "\n".join(lines)


def data_files(model: ModelStory, data: DataSnapshot, seed: int) -> dict[str, str]:
    """data/NAME.dvc (DVC 3 style), data/NAME/schema.json and data/NAME/stats.json."""
    key = f"{seed}:{model.name}:{data.rows}:{data.columns}:{data.reason}".encode()
    digest = hashlib.md5(key, usedforsecurity=False).hexdigest()
    rng = random.Random(digest)
    size = data.rows * (14 * len(data.columns) + rng.randint(0, 9))
    dvc = {
        "outs": [
            {
                "md5": f"{digest}.dir",
                "size": size,
                "nfiles": data.nfiles,
                "hash": "md5",
                "path": model.name,
            }
        ]
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{model.name} training rows",
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in data.columns},
        "required": [name for name, _ in data.columns],
    }
    stats = {"rows": data.rows, "files": data.nfiles, "bytes": size}
    return {
        f"data/{model.name}.dvc": dump_yaml(dvc),
        f"data/{model.name}/schema.json": dump_json(schema),
        f"data/{model.name}/stats.json": dump_json(stats),
    }


def dvc_yaml(models: list[ModelStory]) -> str:
    stages = {
        f"train-{m.name}": {
            "cmd": f"python models/{m.name}/train.py",
            "deps": [f"data/{m.name}", f"models/{m.name}/train.py"],
            "params": [{f"models/{m.name}/params.yaml": ["train", "split"]}],
            "outs": [f"models/{m.name}/model.pkl"],
            "metrics": [{f"models/{m.name}/metrics.json": {"cache": False}}],
        }
        for m in models
    }
    return dump_yaml({"stages": stages})


def artifacts_yaml(models: list[ModelStory]) -> str:
    doc = {
        m.name: {
            "type": "model",
            "path": f"models/{m.name}/model.pkl",
            "description": m.description,
            "labels": list(m.labels),
        }
        for m in models
    }
    return dump_yaml(doc)


SCAFFOLD: dict[str, str] = {
    "README.md": "# Acme ML platform\n\nModels: fraud-detector, churn-predictor, "
    "price-recommender.\nData is versioned with DVC, models with GTO tags "
    "(`gto show`), CI records land in `.ci-runs/`.\n",
    ".gitignore": "__pycache__/\n*.pkl\n/.cd4ml/\n/.ci-runs/\n/cd4ml-console.toml\n"
    "/.cd4ml-demo.json\n",
    ".gto": dump_yaml({"types": ["model"], "stages": list(STAGES)}),
    ".dvc/config": "[core]\n    remote = storage\n['remote \"storage\"']\n"
    "    url = s3://acme-ml-data/dvc\n",
    ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
    ".dvcignore": "# Add patterns of files dvc should ignore\n",
    ".ci/pipeline.yml": PIPELINE,
}


def _toml_str(value: str) -> str:
    return json.dumps(value)


def _toml_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def config_toml(port: int, seed: int) -> str:
    """The console config of the demo (validated by console.config in the tests)."""
    out = [
        f"# cd4ml-console demo workspace (seed {seed}). Generated by `cd4ml-console demo`;",
        "# rebuilt from scratch on every build, so keep your own edits elsewhere.",
        f"stages = {_toml_list(STAGES)}",
        'production_stage = "production"',
        "timeout_seconds = 5",
        "",
        "[workspace]",
        'path = "."',
        'name = "cd4ml demo"',
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
        f"path = {_toml_str(RUNS_DIR)}",
        "[backends.metrics]",
        'type = "scrape"',
        f'url = "http://127.0.0.1:{port}/metrics"',
        "interval_seconds = 2",
        "[backends.audit]",
        'type = "sqlite-audit"',
        "",
    ]
    out += [
        "# Service level objectives: the verdict (ok, degraded, breach, unknown) of each stage",
        "# in the overview's STATUS, `cd4ml-console health` and `watch`; the runbook's numbers.",
        "[slo]",
        "p95_ms = 250",
        "error_rate = 0.02",
        "min_requests = 100",
        'window = "10m"',
        "",
    ]
    for model in MODELS:
        out += [
            f"[models.{model.name}]",
            f"description = {_toml_str(model.description)}",
            f"key_metrics = {_toml_list(model.key_metrics)}",
            "",
        ]
        for key, value in MODEL_SLOS.get(model.name, {}).items():
            out += [f"[models.{model.name}.slo]", f"{key} = {value}", ""]
    for name, (direction, unit, label) in METRICS.items():
        out += [f"[metrics.{name}]", f'direction = "{direction}"', f"label = {_toml_str(label)}"]
        if unit:
            out.append(f"unit = {_toml_str(unit)}")
        if unit == "ms":
            out.append('format = "{:.1f}"')
        out.append("")
    out += [
        "[policy.stages.staging]",
        "required_approvals = 0",
        "require_ci_success = true",
        "schema_change_needs_ack = false",
        "",
        "[policy.stages.production]",
        "required_approvals = 1",
        'approver_roles = ["release_manager", "admin"]',
        "require_ci_success = true",
        "schema_change_needs_ack = true",
        "approval_ttl_hours = 48",
        "metric_bounds = [",
        '  { metric = "auc", min = 0.8, max_regression = 0.01 },',
        '  { metric = "rmse", max = 15.0, max_regression = 0.5 },',
        '  { metric = "latency_p95_ms", max = 50.0 },',
        "]",
        "rolled_back_needs_ack = true",
        "# Live gates: the candidate's shadow figures in staging over 10 minutes, against",
        "# production's. Uncomment to hold v1.3.0 back on its shadow traffic (a request opened",
        "# before the live figures exist must then be made again on them).",
        '# live = { source_stage = "staging", min_requests = 100, max_p95_ms = 250, '
        "max_error_rate = 0.02, max_p95_regression_ms = 50, max_error_rate_regression = 0.01, "
        "max_disagreement = 0.2, max_psi = 0.25 }",
        "",
        "[policy.rollback]",
        "required_approvals = 0",
        "confirm_model_name = true",
        "",
        "[roles]",
        f"admin = {_toml_list(ADMINS)}",
        f"release_manager = {_toml_list(RELEASE_MANAGERS)}",
        "viewer = []",
        'default = "release_manager"  # you, running the demo, may approve and roll back',
        "",
        "[ui]",
        'theme = "dark"',
        "refresh_seconds = 2",
        "",
    ]
    return "\n".join(out)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def junit_xml(suite: str, cases: list[tuple[str, str]]) -> str:
    """A JUnit report; ``cases`` are (name, failure message or "")."""
    failed = sum(1 for _, msg in cases if msg)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<testsuite name="{suite}" tests="{len(cases)}" failures="{failed}" errors="0">',
    ]
    for name, msg in cases:
        if msg:
            lines.append(f'  <testcase classname="{suite}" name="{name}">')
            lines.append(f"    <failure message={quoteattr(msg)}/>")
            lines.append("  </testcase>")
        else:
            lines.append(f'  <testcase classname="{suite}" name="{name}"/>')
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
