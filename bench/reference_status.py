"""A single-pass reader of a benchmark workspace that prints the facts of ``status --json``.

The yardstick of ``status --json`` in ``make bench``: the least work that gives the same facts,
written as a script would. One ``git for-each-ref`` for the tags, one ``git cat-file --batch``
with every request written at once, one pass over ``.ci-runs``; the standard library and PyYAML
(libyaml) only. It knows the benchmark workspaces (their GTO tags, the first candidate file of
each kind, no metrics backend), not every workspace: the bench checks that its facts are the
console's before timing either.

    python bench/reference_status.py WORKSPACE > facts.json
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TAG = re.compile(
    r"^(?P<art>[a-zA-Z0-9][a-zA-Z0-9_/-]*?)"
    r"(?:@(?P<version>v\d+\.\d+\.\d+)|#(?P<stage>[a-zA-Z0-9_/-]+))(?:#(?P<counter>\d+))?$"
)
FORMAT = "%(refname)%00%(objecttype)%00%(object)%00%(taggername)%00%(taggerdate:raw)%00"
ROW_KEYS = ("rows", "n_rows", "num_rows", "row_count", "nrows")


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=True
    ).stdout


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version[1:].split("."))


def when(raw: str) -> tuple[int, datetime]:
    stamp, zone = raw.split()
    sign = -1 if zone[0] == "-" else 1
    offset = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
    return int(stamp), datetime.fromtimestamp(int(stamp), tz=offset)


def read_tags(repo: Path) -> dict[str, dict[str, Any]]:
    """artifact -> {versions: {version: commit}, stages: {stage: (version, tagger, at)}}."""
    arts: dict[str, dict[str, Any]] = {}
    assigns: list[tuple[tuple[int, int, str], str, str, str, str, datetime]] = []
    tokens = git(repo, "for-each-ref", f"--format={FORMAT}", "refs/tags").split(b"\0")
    for i in range(0, len(tokens) - 5, 5):
        ref, kind, obj, tagger, date = (t.decode() for t in tokens[i : i + 5])
        m = TAG.match(ref.strip().removeprefix("refs/tags/"))
        if m is None or kind != "tag":
            continue
        art = arts.setdefault(m["art"], {"versions": {}, "stages": {}})
        stamp, at = when(date)
        if m["version"]:
            art["versions"][m["version"]] = obj
        else:
            order = (stamp, int(m["counter"] or 0), ref)
            assigns.append((order, m["art"], m["stage"], obj, tagger, at))
    peeled = dict(
        line.split()
        for line in git(repo, "for-each-ref", "--format=%(objectname) %(*objectname)", "refs/tags")
        .decode()
        .splitlines()
    )
    for order, name, stage, obj, tagger, at in sorted(assigns):
        art = arts[name]
        commit = peeled.get(obj, obj)
        version = next((v for v, c in art["versions"].items() if c == commit), None)
        if version is not None:
            art["stages"][stage] = (version, tagger, at, order)
    for art in arts.values():  # registrations: tag object -> commit
        art["versions"] = {v: peeled.get(o, o) for v, o in art["versions"].items()}
    return arts


def batch(repo: Path, specs: list[str]) -> list[bytes | None]:
    """Every spec through one ``git cat-file --batch``, all requests written at once."""
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    payload = "".join(f"{s}\n" for s in specs).encode()
    writer = threading.Thread(target=lambda: (proc.stdin.write(payload), proc.stdin.close()))
    writer.start()
    out: list[bytes | None] = []
    for _ in specs:
        header = proc.stdout.readline().split()
        if header[-1] == b"missing":
            out.append(None)
            continue
        body = proc.stdout.read(int(header[2]) + 1)
        out.append(body[:-1])
    writer.join()
    proc.wait()
    return out


def ci_states(repo: Path) -> dict[str, str]:
    """commit -> success / failure / running, from the newest run of each pipeline."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in (repo / ".ci-runs").glob("*.json"):
        run = json.loads(path.read_bytes())
        runs.setdefault(run["commit"], []).append(run)
    out = {}
    for commit, found in runs.items():
        found.sort(key=lambda r: (r["started_at"] or "", int(r["id"])), reverse=True)
        newest: dict[str, dict[str, Any]] = {}
        for run in found:
            newest.setdefault(run["pipeline"], run)
        if any(r["status"] != "completed" for r in newest.values()):
            out[commit] = "running"
        elif all(r["conclusion"] == "success" for r in newest.values()):
            out[commit] = "success"
        else:
            out[commit] = "failure"
    return out


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def data_facts(model: str, commit: str, dvc: bytes | None, stats: bytes | None) -> dict[str, Any]:
    outs = []
    for o in (yaml.load(dvc, Loader=LOADER) or {}).get("outs", []) if dvc else []:
        outs.append(
            {
                "path": f"data/{o['path']}",
                "md5": str(o.get("md5") or o.get("etag") or o.get("checksum") or ""),
                "size": o.get("size"),
                "nfiles": o.get("nfiles"),
            }
        )
    digest = None
    if outs:
        joined = "|".join(f"{o['path']}:{o['md5']}" for o in sorted(outs, key=lambda o: o["path"]))
        digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    rows = None
    doc = json.loads(stats) if stats else {}
    for key in ROW_KEYS:
        if isinstance(doc.get(key), int):
            rows = doc[key]
            break
    return {"data_version": digest, "data": outs, "rows": rows}


def status(repo: Path) -> dict[str, Any]:
    config = tomllib.loads((repo / "cd4ml-console.toml").read_text())
    stages, prod = config["stages"], config["production_stage"]
    now = datetime.now(UTC).isoformat()
    arts = read_tags(repo)
    index = yaml.load(git(repo, "show", "HEAD:artifacts.yaml"), Loader=LOADER) or {}
    configured = config.get("models", {})
    names = list(configured) + sorted(n for n in set(arts) | set(index) if n not in configured)
    wanted = sorted(
        {
            (n, arts[n]["versions"][s[0]])
            for n in names
            if n in arts
            for s in arts[n]["stages"].values()
        }
    )
    specs = []
    for name, commit in wanted:
        specs += [f"{commit}:data/{name}.dvc", f"{commit}:models/{name}/metrics.json"]
        specs.append(f"{commit}:data/{name}/stats.json")
    answers = iter(batch(repo, specs))
    facts = {}
    for name, commit in wanted:
        dvc, metrics, stats = next(answers), next(answers), next(answers)
        numbers = {
            k: float(v)
            for k, v in flat(json.loads(metrics) if metrics else {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        facts[(name, commit)] = {**data_facts(name, commit, dvc, stats), "metrics": numbers}
    ci = ci_states(repo)
    models = []
    for name in names:
        art = arts.get(name, {"versions": {}, "stages": {}})
        versions = sorted(art["versions"], key=semver)
        doc_stages: dict[str, Any] = {}
        for stage in stages:
            got = art["stages"].get(stage)
            if got is None:
                doc_stages[stage] = None
                continue
            version, tagger, at, _ = got
            commit = art["versions"][version]
            doc_stages[stage] = {
                "version": version,
                "commit": commit,
                "commit_short": commit[:8],
                **facts[(name, commit)],
                "ci": ci.get(commit, "none"),
                "assigned_by": tagger or None,
                "assigned_at": at.isoformat(),
            }
            order = ("data_version", "data", "rows", "metrics", "ci", "assigned_by", "assigned_at")
            doc_stages[stage] = {
                k: doc_stages[stage][k] for k in ("version", "commit", "commit_short", *order)
            }
        live = art["stages"].get(prod)
        start = versions.index(live[0]) + 1 if live else 0
        description = (index.get(name) or {}).get("description") or configured.get(name, {}).get(
            "description", ""
        )
        serving = {s: art["stages"][s][0] for s in stages if art["stages"].get(s)}
        by_stage = {s: _unjudged(s, v, now) for s, v in serving.items()}
        judged = by_stage.get(prod)
        models.append(
            {
                "name": name,
                "description": description,
                "deprecated": False,  # the bench writes no @deprecated tag
                "stages": doc_stages,
                "candidates": versions[start:],
                "versions": len(versions),
                "health": _prod_health(judged),
                "health_by_stage": by_stage,
                "errors": {},
            }
        )
    return {
        "schema": "cd4ml-console/status/v1",
        "stages": stages,
        "production_stage": prod,
        "registry": {"remote": None, "fetched_at": None},  # the bench has no remote
        "models": models,
        "errors": [],
    }


# The bench's workspaces configure no SLO and no metrics backend: every stage that holds a
# version gets the same verdict, saying so, over the default window.
NO_SLO = "no SLO configured (set p95_ms or error_rate in [slo] or [models.NAME.slo])"


def _unjudged(stage: str, version: str, now: str) -> dict[str, Any]:
    return {
        "stage": stage, "version": version, "verdict": "unknown", "reasons": [NO_SLO],
        "window_seconds": 600.0, "requests": None, "errors": None, "latency_p95_ms": None,
        "error_rate": None, "covered_seconds": None, "observed_at": None, "checked_at": now,
    }  # fmt: skip


def _prod_health(judged: dict[str, Any] | None) -> dict[str, Any] | None:
    if judged is None:
        return None
    return {
        "stage": judged["stage"], "version": judged["version"], "latency_p95_ms": None,
        "error_rate": None, "traffic_rps": None, "prediction_mean": None, "observed_at": None,
        "verdict": judged["verdict"], "reasons": judged["reasons"],
    }  # fmt: skip


def facts(doc: dict[str, Any]) -> dict[str, Any]:
    """A ``status --json`` document without what differs between runs and readers (when it
    was generated, when each verdict was checked)."""
    out = {k: v for k, v in doc.items() if k not in ("workspace", "generated_at")}
    out["models"] = [
        {
            **m,
            "health_by_stage": {
                s: {k: v for k, v in h.items() if k != "checked_at"}
                for s, h in (m.get("health_by_stage") or {}).items()
            },
        }
        for m in doc.get("models", [])
    ]
    return out


if __name__ == "__main__":
    print(json.dumps(status(Path(sys.argv[1])), indent=2, default=str))
