"""``status --json`` on an MLflow registry of 200 models x 20 versions vs mlflow's own client.

Both read the same ``mlflow server`` (SQLite store under bench/.work/mlflow-200x20/, loopback,
a free port), in the same run, turn about: the console as a subprocess, and a script run by
``.venv-mlflow/bin/python`` that fetches the same facts with ``mlflow.MlflowClient`` (every
registered model, its versions and aliases, the run metrics of the versions in a stage).

This file is also that script: ``python bench/mlflow_compare.py seed DB ARTIFACTS`` builds the
store, ``python bench/mlflow_compare.py fetch URL`` prints the facts as JSON. Only the stdlib
is imported at the top (the mlflow venv has no console, the console's venv has no mlflow).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODELS = 200
VERSIONS = 20
STAGE_ALIASES = {"staging": "challenger", "production": "champion"}  # console stage -> alias
PLAN_KEY = f"m{MODELS}-v{VERSIONS}-plan1"  # bump when the seeded content changes
START_TIMEOUT = 240.0  # seconds; a cold start on a loaded 2-core box takes ~30 s


def model_name(i: int) -> str:
    return f"model-{i:03d}"


def aliases_of(i: int) -> dict[str, str]:
    """alias -> version of model ``i``: champion 17..20, challenger newer than champion."""
    champion = VERSIONS - i % 4
    out = {} if i % 10 == 9 else {"champion": str(champion)}
    if champion < VERSIONS:
        out["challenger"] = str(VERSIONS)
    return out


# -- run by .venv-mlflow/bin/python ----------------------------------------------------------


def seed(db: str, artifacts: str) -> None:
    """Write the store straight into SQLite with mlflow's client (no server in between)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    exp = client.create_experiment("bench-200x20", artifact_location=f"file://{artifacts}")
    t0 = 1_700_000_000_000
    for i in range(MODELS):
        name = model_name(i)
        client.create_registered_model(name, tags={"team": f"team-{i % 7}"}, description=name)
        for j in range(VERSIONS):
            run = client.create_run(exp, start_time=t0 + j, run_name=f"{name}-train-{j + 1}")
            rid = run.info.run_id
            ts = t0 + i * VERSIONS + j
            client.log_batch(
                rid,
                metrics=[
                    Metric("auc", round(0.70 + j / 100 + i / 10_000, 6), ts, 0),
                    Metric("latency_ms", 30.0 - j / 2, ts, 0),
                ],
                params=[
                    Param("learning_rate", str(0.01 * (j + 1))),
                    Param("n_estimators", str(100 + 10 * j)),
                    Param("model_type", "gbm"),
                ],
            )
            client.set_terminated(rid, end_time=ts + 1)
            client.create_model_version(
                name, source=f"{run.info.artifact_uri}/model", run_id=rid, await_creation_for=0
            )
        for alias, version in aliases_of(i).items():
            client.set_registered_model_alias(name, alias, version)


def fetch(url: str) -> dict[str, Any]:
    """What a person would write with mlflow's client to get the facts ``status`` shows."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    out: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        for rm in page:
            versions = client.search_model_versions(f"name='{rm.name}'")
            by_number = {v.version: v for v in versions}
            stages: dict[str, Any] = {}
            for stage, alias in STAGE_ALIASES.items():
                number = rm.aliases.get(alias)
                v = by_number.get(number) if number else None
                if v is None:
                    stages[stage] = None
                    continue
                metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
                stages[stage] = {"version": v.version, "metrics": metrics}
            out[rm.name] = {"versions": len(versions), "stages": stages}
        token = page.token
        if not token:
            return out


def client_main(argv: list[str]) -> int:
    command, *args = argv
    if command == "seed":
        seed(*args)
    elif command == "fetch":
        print(json.dumps(fetch(args[0]), sort_keys=True))
    else:
        raise SystemExit(f"unknown command {command}")
    return 0


# -- the server ------------------------------------------------------------------------------


def mlflow_python(repo: Path) -> Path:
    """The python of the mlflow venv: ``$CD4ML_MLFLOW``'s, else .venv-mlflow (``make tools``)."""
    given = os.environ.get("CD4ML_MLFLOW")
    exe = Path(given) if given else repo / ".venv-mlflow" / "bin" / "mlflow"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} does not exist: run `make tools`")
    return exe.parent / "python"


def mlflow_env(**extra: str) -> dict[str, str]:
    """The environment of mlflow's processes: none of the caller's MLFLOW_*, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (mlflow CLI, uvicorn workers) that we started."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def ensure_store(python: Path, work: Path) -> tuple[Path, float]:
    """The seeded SQLite store (seeded once; later runs reuse it) and the seconds seeding took."""
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip()  # fmt: skip
    db = work / "mlflow.db"
    stamp = work / "seeded.json"
    want = {"plan": PLAN_KEY, "mlflow": version}
    with contextlib.suppress(OSError, ValueError):
        if db.exists() and json.loads(stamp.read_text()) == want:
            return db, 0.0
    work.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    # built in RAM when there is a tmpfs (a commit per call: fsync is most of the time)
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else work) as tmp:
        building = Path(tmp) / "mlflow.db"
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), __file__, "seed", str(building), str(work / "artifacts")],
            capture_output=True, text=True, timeout=3600, check=False, cwd=work,
            env=mlflow_env(),
        )  # fmt: skip
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"seeding failed: {tail}")
        shutil.copyfile(building, work / "mlflow.db.part")
        (work / "mlflow.db.part").replace(db)
    stamp.write_text(json.dumps(want))
    return db, time.perf_counter() - started


@contextlib.contextmanager
def mlflow_server(python: Path, db: Path, work: Path, workers: int) -> Iterator[str]:
    """``mlflow server`` on the store, on a free loopback port; stopped (group and all) after."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    env = mlflow_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(python.parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
             "--default-artifact-root", str(work / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError("mlflow server exited: " + " | ".join(tail))
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT:.0f}s")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


def write_config(work: Path, url: str) -> Path:
    """A registry-only workspace: the runs carry no git commit, so no code/data/ci lookups."""
    config = work / "cd4ml-console.toml"
    aliases = ", ".join(f'{s} = "{a}"' for s, a in STAGE_ALIASES.items())
    config.write_text(
        f'stages = {json.dumps(list(STAGE_ALIASES))}\n\n[backends.registry]\ntype = "mlflow"\n'
        f'url = "{url}"\nauth = "none"\nstage_aliases = {{ {aliases} }}\n'
    )
    return config


# -- the comparison --------------------------------------------------------------------------


def facts_of_status(doc: dict[str, Any]) -> dict[str, Any]:
    """``status --json`` reduced to what the client script prints."""
    out = {}
    for m in doc.get("models", []):
        stages = {
            stage: {"version": s["version"], "metrics": s["metrics"]} if s else None
            for stage, s in m["stages"].items()
        }
        out[m["name"]] = {"versions": m["versions"], "stages": stages}
    return out


def expected_facts() -> dict[str, dict[str, str | None]]:
    """model -> stage -> version, as seeded."""
    out = {}
    for i in range(MODELS):
        aliases = aliases_of(i)
        out[model_name(i)] = {s: aliases.get(a) for s, a in STAGE_ALIASES.items()}
    return out


def differences(console: dict[str, Any], client: dict[str, Any]) -> list[str]:
    """Where the two disagree with each other or with the seed (empty: the same facts)."""
    problems = []
    for name, stages in expected_facts().items():
        for who, facts in (("console", console), ("client", client)):
            got = facts.get(name)
            if got is None:
                problems.append(f"{who}: no {name}")
                continue
            versions = {s: (x or {}).get("version") for s, x in got["stages"].items()}
            if versions != stages:
                problems.append(f"{who}: {name} stages {versions} != seeded {stages}")
            if got["versions"] != VERSIONS:
                problems.append(f"{who}: {name} has {got['versions']} versions")
        if name in console and name in client and console[name] != client[name]:
            problems.append(f"{name}: console {console[name]} != client {client[name]}")
    extra = sorted(set(console) - set(client)) + sorted(set(client) - set(console))
    problems += [f"only one of them lists {n}" for n in extra]
    return problems


def mlflow_rows(opts: Any, built: Any = None) -> list[Any]:
    """Console ``status --json`` vs mlflow's client on 200 models x 20 versions: wall, ratio."""
    from bench.measure import REPO, Row

    label = f"MLflow, {MODELS} models x {VERSIONS} versions"
    rows = [
        Row("status --json (mlflow registry)", workspace=label),
        Row("mlflow client script, same facts", workspace=label),
        Row("status --json / mlflow client script", workspace=label, unit="x", target=0.5),
        Row("mlflow client script: import only", workspace=label, note="baseline, in the above"),
        Row(
            "models with a timeout, 2 busy loops",
            workspace=label,
            unit="models",
            target=0,
            note="status --json at the default timeout (5 s) with 2 CPU-bound loops running",
        ),
    ]
    work = REPO / "bench" / ".work" / f"mlflow-{MODELS}x{VERSIONS}"
    try:
        python = mlflow_python(REPO)
        db, seeded = ensure_store(python, work)
        if seeded:
            print(f"seeded {db} in {seeded:.0f}s", file=sys.stderr)
        workers = min(4, os.cpu_count() or 1)
        with _sigterm_unwinds(), mlflow_server(python, db, work, workers) as url:
            _measure(opts, rows, python, work, url)
        rows[0].note = "; ".join(x for x in (rows[0].note, f"{workers} server workers") if x)
    except Exception as exc:  # no mlflow, no server: say why, never break the bench
        for r in rows:
            r.na = f"n/a ({type(exc).__name__}: {exc})"[:120]
    return rows


def _measure(opts: Any, rows: list[Any], python: Path, work: Path, url: str) -> None:
    from bench.measure import bench_env, console_exe, run_process

    console_row, client_row, ratio, imports, busy = rows
    # one retry at most: if the server goes away (the bench is stopped) the client ends soon
    env, client_env = bench_env(), mlflow_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
    timeout = max(opts.status_timeout, 120.0)
    console_argv = [console_exe(), "--config", str(write_config(work, url)), "status", "--json"]
    client_argv = [str(python), str(Path(__file__).resolve()), "fetch", url]
    log = work / "server.log"
    # one checked run of each first (it also warms the server); then n timed, in turn
    before = _requests(log)
    first = run_process(console_argv, env=env, capture=True, timeout=timeout, cwd=work)
    middle = _requests(log)
    other = run_process(client_argv, env=client_env, capture=True, timeout=timeout, cwd=work)
    console_calls, client_calls = middle - before, _requests(log) - middle
    why = _check(first, other)
    if why:
        for r in rows:
            r.na = why[:120]
        return
    import_argv = [str(python), "-c", "from mlflow import MlflowClient"]
    for _ in range(max(1, opts.slow_runs)):
        a = run_process(console_argv, env=env, timeout=timeout, cwd=work)
        b = run_process(client_argv, env=client_env, timeout=timeout, cwd=work)
        if a.timed_out or b.timed_out or b.returncode != 0:
            break
        console_row.values.append(a.seconds * 1e3)
        client_row.values.append(b.seconds * 1e3)
        ratio.values.append(a.seconds / b.seconds)
        imports.values.append(run_process(import_argv, env=client_env).seconds * 1e3)
    for _ in range(max(1, opts.slow_runs)):
        busy.values.append(float(_timeouts_under_load(console_argv, env, work, timeout)))
    console_row.note = f"exit {first.returncode}, {console_calls} requests; facts checked"
    client_row.note = f"MlflowClient, sequential, {client_calls} requests"
    ratio.note = "console / client: same server, same run, in turn"


def _timeouts_under_load(argv: list[str], env: dict[str, str], work: Path, timeout: float) -> int:
    """Models whose status says a backend "did not answer", run while two busy loops (one per
    core of the bench machine) compete with the console and the server for the CPU."""
    from bench.measure import run_process

    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        run = run_process(argv, env=env, capture=True, timeout=timeout, cwd=work)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    doc = json.loads(run.stdout or b"{}")
    return len({e["model"] for e in doc.get("errors", []) if "did not answer" in e["message"]})


def _requests(log: Path) -> int:
    """REST requests the server has logged so far (uvicorn's access log)."""
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace").count(" /api/2.0/mlflow/")
    return 0


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While the server runs, SIGTERM unwinds (the ``finally`` stops the server) too."""

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, leave)
    except ValueError:  # not the main thread: nothing to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check(console: Any, client: Any) -> str:
    """Why the two first runs can not be compared ("" when they report the same facts)."""
    if console.timed_out or client.timed_out:
        return "timed out (killed)"
    if console.returncode not in (0, 1):
        return f"status exited {console.returncode}"
    if client.returncode != 0:
        return f"client script exited {client.returncode}"
    try:
        doc = json.loads(console.stdout)
        theirs = json.loads(client.stdout)
    except ValueError:
        return "no JSON"
    if doc.get("errors"):
        return f"status reported errors: {doc['errors'][0]}"
    problems = differences(facts_of_status(doc), theirs)
    return f"facts differ: {problems[0]} (+{len(problems) - 1})" if problems else ""


if __name__ == "__main__":
    # run as a file, bench/ is sys.path[0]: its profile.py would shadow the stdlib's
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.exit(client_main(sys.argv[1:]))
