"""A real ``mlflow server`` on loopback for the plugin's tests, seeded by mlflow's own client.

mlflow lives in its own venv (the console never imports it): ``$CD4ML_MLFLOW`` (the ``mlflow``
executable), else ``.venv-mlflow/bin/mlflow`` at the repository root (``make tools``), else
the fixture creates that venv once (``pip install 'mlflow>=3,<4'``, a few minutes; guarded by a
file lock so parallel workers build it once). If it can not be installed the tests skip with
the reason, except under CI where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.config import ConsoleConfig
from console.plugins import BackendContext

HERE = Path(__file__).resolve().parent
SEED = HERE / "mlflow_seed.py"
MLFLOW_SPEC = "mlflow>=3,<4"
START_TIMEOUT = 240.0  # seconds; a cold start on a loaded 2-core box takes ~30 s


@dataclass(frozen=True)
class MlflowServer:
    url: str
    python: Path
    seeded: dict[str, Any]
    log: Path

    def dump(self, model: str) -> dict[str, Any]:
        """Aliases and version tags of ``model`` as mlflow's own client reads them."""
        out = subprocess.run(
            [str(self.python), str(SEED), "dump", self.url, model],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout)


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _mlflow_exe(root: Path) -> Path:
    given = os.environ.get("CD4ML_MLFLOW")
    if given:
        exe = Path(given)
        if not exe.exists():
            _fail_or_skip(f"CD4ML_MLFLOW={given} does not exist")
        return exe
    venv = root / ".venv-mlflow"
    exe = venv / "bin" / "mlflow"
    if exe.exists():
        return exe
    venv.mkdir(exist_ok=True)
    with open(venv / ".cd4ml-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be installing it
        if exe.exists():
            return exe
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", MLFLOW_SPEC],
        ]  # fmt: skip
        for cmd in steps:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                _fail_or_skip(f"could not install {MLFLOW_SPEC} into {venv}: {exc}")
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                _fail_or_skip(f"could not install {MLFLOW_SPEC} into {venv}: {' | '.join(tail)}")
    return exe


def _empty_db(request: pytest.FixtureRequest, python: Path, tmp: Path) -> Path:
    """A fresh SQLite store for the server, copied from a cached, already migrated one.

    Creating MLflow's tables takes seconds; the migrated empty database is kept in the pytest
    cache per mlflow version (built once by mlflow itself, under a file lock).
    """
    db = tmp / "mlflow.db"
    cache = getattr(request.config, "cache", None)
    dist = sorted(python.parent.parent.glob("lib/python*/site-packages/mlflow-*.dist-info"))
    if cache is None or not dist:
        return db
    folder = Path(cache.mkdir("cd4ml-mlflow"))
    template = folder / f"empty-{dist[-1].name.removesuffix('.dist-info')}.db"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            building = folder / f"building-{os.getpid()}.db"
            code = (
                "import sys\n"
                "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as T\n"
                "from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as R\n"
                "uri = 'sqlite:///' + sys.argv[1]\n"
                "T(uri, sys.argv[2]); R(uri)\n"
            )
            done = subprocess.run(
                [str(python), "-c", code, str(building), str(tmp / "artifacts")],
                capture_output=True, timeout=300, check=False,
            )  # fmt: skip
            if done.returncode != 0 or not building.exists():
                building.unlink(missing_ok=True)
                return db  # the server migrates a new file itself
            building.replace(template)
    shutil.copyfile(template, db)
    return db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (mlflow CLI, uvicorn) that we started."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError("mlflow server exited during startup:\n" + "\n".join(tail))
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"mlflow server at {url} not healthy after {START_TIMEOUT:.0f}s; see {log}")


@contextlib.contextmanager
def serve(
    request: pytest.FixtureRequest, tmp: Path, *, seed: bool = True
) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (SQLite store) on a free loopback port, seed it (``seed``),
    stop it after."""
    exe = _mlflow_exe(Path(request.config.rootpath))
    python = exe.parent / "python"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    db = _empty_db(request, python, tmp)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runner: faster start
        "PYTHONUNBUFFERED": "1",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "server", "--backend-store-uri", f"sqlite:///{db}",
             "--default-artifact-root", str(tmp / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True,
        )  # fmt: skip
    seeder: subprocess.Popen[str] | None = None
    try:
        seeded: dict[str, Any] = {}
        if seed:  # mlflow's client imports slowly: start seeding now, it waits for /health
            seeder = subprocess.Popen(
                [str(python), str(SEED), "seed", url],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp,
            )  # fmt: skip
        _wait_healthy(url, proc, log)
        if seeder is not None:
            stdout, stderr = seeder.communicate(timeout=START_TIMEOUT)
            if seeder.returncode != 0:
                raise RuntimeError(f"seeding mlflow failed:\n{stderr.strip()[-2000:]}")
            seeded = json.loads(stdout.strip().splitlines()[-1])
        yield MlflowServer(url=url, python=python, seeded=seeded, log=log)
    finally:
        if seeder is not None and seeder.poll() is None:
            seeder.kill()
            seeder.wait(timeout=5)
        _stop(proc)


@pytest.fixture(scope="session")
def mlflow_serve() -> Any:
    """``serve`` itself, for a test module that needs a server of its own."""
    return serve


@pytest.fixture(scope="session")
def mlflow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """The seeded server most tests share (they must not add models: some list them all)."""
    with serve(request, tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def ctx(tmp_path: Path) -> BackendContext:
    """A backend context whose config has the stages staging and production."""
    config = ConsoleConfig(stages=["staging", "production"])
    return BackendContext(workspace=tmp_path, state_dir=tmp_path / ".cd4ml", config=config)


@pytest.fixture(autouse=True)
def _fast_and_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retry back-off in tests, and no MLflow credentials leaking in from the environment."""
    from cd4ml_console_mlflow import transport

    monkeypatch.setattr(transport, "BACKOFF", (0.0, 0.0, 0.0))
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"):
        monkeypatch.delenv(var, raising=False)
