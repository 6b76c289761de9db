"""The HTTP backends under test: how to build each one against a fault-server cell, what a good
peer answers, one read and (where the backend has one) one mutation."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.config import ConsoleConfig
from console.plugins import BackendContext
from console.ports import (
    BackendError,
    InvalidResponse,
    NotFound,
    Unauthorized,
    Unreachable,
)

from .faultserver import Hit, Reply, json_reply

SHA = "c" * 40
TOKEN_ENV = "CD4ML_RELIABILITY_TOKEN"
TRIGGER_ENV = "CD4ML_RELIABILITY_TRIGGER"
TIMEOUT = 1.0
CREATED = "2025-11-13T10:00:00Z"


def context(tmp: Path, timeout: float = TIMEOUT) -> BackendContext:
    config = ConsoleConfig(stages=["staging", "production"], timeout_seconds=timeout)
    return BackendContext(workspace=tmp, state_dir=tmp / ".cd4ml", config=config, timeout=timeout)


def creds(tmp: Path) -> dict[str, Any]:
    return {"use_keyring": False, "credentials_file": tmp / "no-credentials.toml"}


# -- scrape ---------------------------------------------------------------------------------

EXPOSITION = """# TYPE model_requests_total counter
model_requests_total{model="m",stage="production",version="v1.0.0",outcome="ok"} 95
model_requests_total{model="m",stage="production",version="v1.0.0",outcome="error"} 5
# TYPE model_request_latency_seconds histogram
model_request_latency_seconds_bucket{model="m",stage="production",version="v1.0.0",le="0.1"} 90
model_request_latency_seconds_bucket{model="m",stage="production",version="v1.0.0",le="+Inf"} 100
model_request_latency_seconds_sum{model="m",stage="production",version="v1.0.0"} 5
model_request_latency_seconds_count{model="m",stage="production",version="v1.0.0"} 100
"""


def scrape_good(hit: Hit) -> Reply:
    return 200, {"Content-Type": "text/plain; version=0.0.4"}, EXPOSITION.encode()


def make_scrape(url: str, tmp: Path, **over: Any) -> Any:
    from console.backends.plugin import SCRAPE
    from console.plugins.options import ScrapeConfig

    cfg = {"url": url + "/metrics", "interval_seconds": 0.05, **over}
    return SCRAPE.factory(ScrapeConfig(**cfg), context(tmp))


# -- prometheus -----------------------------------------------------------------------------


def prometheus_good(hit: Hit) -> Reply:
    now = time.time()
    if hit.path.endswith("/query_range"):
        data: Any = {"resultType": "matrix", "result": [
            {"metric": {"version": "v1.0.0"}, "values": [[now - 1, "0.5"], [now, "0.5"]]}]}  # fmt: skip
    elif hit.path.endswith("/query"):
        data = {"resultType": "vector",
                "result": [{"metric": {"version": "v1.0.0"}, "value": [now, "0.5"]}]}  # fmt: skip
    else:
        data = {"version": "2.42.0"}
    return json_reply({"status": "success", "data": data})


def make_prometheus(url: str, tmp: Path, **over: Any) -> Any:
    from cd4ml_console_prometheus import PLUGIN, PrometheusConfig

    return PLUGIN.factory(PrometheusConfig(url=url, **creds(tmp), **over), context(tmp))


# -- mlflow ---------------------------------------------------------------------------------


def mlflow_peer() -> Callable[[Hit], Reply]:
    """A tiny MLflow: model ``m`` with versions 1 and 2, alias production -> 1."""
    aliases = {"production": "1"}

    def handle(hit: Hit) -> Reply:
        path = hit.path.removeprefix("/api/2.0/mlflow/")
        q = {k: v[0] for k, v in hit.query.items()}
        if path == "/version":
            return 200, {"Content-Type": "text/plain"}, b"3.1.0"
        if path == "registered-models/search":
            return json_reply({"registered_models": [{"name": "m"}]})
        if path == "registered-models/get":
            listed = [{"alias": a, "version": v} for a, v in aliases.items()]
            return json_reply({"registered_model": {"name": "m", "aliases": listed}})
        if path == "model-versions/search":
            return json_reply({"model_versions": [{"name": "m", "version": v} for v in "12"]})
        if path == "model-versions/get":
            return json_reply({"model_version": {"name": "m", "version": q.get("version", "1")}})
        if path == "registered-models/alias" and hit.method == "GET":
            version = aliases.get(q.get("alias", ""))
            if version is None:
                return json_reply({"error_code": "RESOURCE_DOES_NOT_EXIST"}, 404)
            return json_reply({"model_version": {"name": "m", "version": version}})
        if path == "registered-models/alias" and hit.method == "POST":
            body = hit.json()
            aliases[body["alias"]] = body["version"]
            return json_reply({})
        if path == "model-versions/set-tag":
            return json_reply({})
        return json_reply({"error_code": "ENDPOINT_NOT_FOUND"}, 404)

    return handle


def make_mlflow(url: str, tmp: Path, **over: Any) -> Any:
    from cd4ml_console_mlflow import PLUGIN, MlflowConfig

    cfg = MlflowConfig(**{"url": url, "auth": "none", "run_details": False, **creds(tmp), **over})
    return PLUGIN.factory(cfg, context(tmp))


# -- github actions -------------------------------------------------------------------------


def _gh_run(run_id: int, sha: str) -> dict[str, Any]:
    return {"id": run_id, "name": "ci", "head_sha": sha, "run_number": run_id, "event": "push",
            "status": "completed", "conclusion": "success", "created_at": CREATED,
            "html_url": f"https://github.example/acme/m/actions/runs/{run_id}"}  # fmt: skip


def github_good(hit: Hit) -> Reply:
    path = hit.path
    if path.endswith("/dispatches"):
        return json_reply({"workflow_run_id": 99})
    if path.endswith("/jobs"):
        return json_reply({"total_count": 1, "jobs": [
            {"id": 1, "name": "test", "status": "completed", "conclusion": "success"}]})  # fmt: skip
    if path.endswith("/actions/runs/99"):
        return json_reply(_gh_run(99, SHA))
    if path.endswith("/actions/runs"):
        sha = hit.query.get("head_sha", [SHA])[0]
        return json_reply({"total_count": 1, "workflow_runs": [_gh_run(7, sha)]})
    if "/actions/workflows" in path:
        return json_reply({"total_count": 1, "state": "active", "workflows": []})
    return json_reply({"message": "Not Found"}, 404)


def make_github(url: str, tmp: Path, **over: Any) -> Any:
    from cd4ml_console_github_actions import PLUGIN, GitHubActionsConfig

    cfg = GitHubActionsConfig(
        repository="acme/m", api_url=url, token_env=TOKEN_ENV, deploy_workflow="deploy.yml",
        cache_seconds=0, poll_seconds=0.05, find_run_seconds=2, timeout_seconds=5,
        **creds(tmp), **over,
    )  # fmt: skip
    return PLUGIN.factory(cfg, context(tmp))


# -- gitlab ci ------------------------------------------------------------------------------


def _gl_pipeline(pid: int, sha: str) -> dict[str, Any]:
    return {"id": pid, "sha": sha, "ref": "main", "status": "success", "source": "push",
            "created_at": CREATED, "web_url": f"https://gitlab.example/ml/m/-/pipelines/{pid}"}  # fmt: skip


def gitlab_good(hit: Hit) -> Reply:
    path = hit.path
    if path.endswith("/trigger/pipeline") or path.endswith("/pipeline"):
        return json_reply(_gl_pipeline(6, SHA), 201)
    if path.endswith("/jobs"):
        return json_reply([{"id": 1, "name": "test", "stage": "test", "status": "success"}])
    if path.endswith("/pipelines/6"):
        return json_reply(_gl_pipeline(6, SHA))
    if path.endswith("/pipelines"):
        sha = hit.query.get("sha", [SHA])[0]
        return json_reply([_gl_pipeline(5, sha)])
    if path.rstrip("/").endswith("ml%2Fm"):
        return json_reply({"id": 1, "path_with_namespace": "ml/m"})
    return json_reply({"message": "404 Not Found"}, 404)


def make_gitlab(url: str, tmp: Path, **over: Any) -> Any:
    from cd4ml_console_gitlab_ci import PLUGIN, GitLabCIConfig

    cfg = GitLabCIConfig(
        project="ml/m", url=url, token_env=TOKEN_ENV, trigger_token_env=TRIGGER_ENV,
        cache_seconds=0, poll_seconds=0.05, timeout_seconds=5, **creds(tmp), **over,
    )  # fmt: skip
    return PLUGIN.factory(cfg, context(tmp))


# -- the table ------------------------------------------------------------------------------

STATUS_ERRORS: dict[str, type[BackendError]] = {
    "refused": Unreachable, "dns": Unreachable, "blackhole": Unreachable,
    "read_timeout": Unreachable, "slow_body": Unreachable,
    "http_500": Unreachable, "http_502": Unreachable, "http_503": Unreachable,
    "http_504": Unreachable, "http_429": Unreachable,
    "http_401": Unauthorized, "http_403": Unauthorized, "http_404": NotFound,
    "malformed": InvalidResponse, "wrong_shape": InvalidResponse, "empty": InvalidResponse,
    "huge": InvalidResponse,
}  # fmt: skip
"""What a read must raise for each fault (a backend may override a cell, with a reason)."""


@dataclass(frozen=True)
class HttpCase:
    """One HTTP backend: its kind, how to build it, its peer, one read, one mutation."""

    name: str
    kind: str
    make: Callable[..., Any]
    peer: Callable[[], Callable[[Hit], Reply]]
    read: Callable[[Any], Awaitable[Any]]
    mutate: Callable[[Any], Awaitable[Any]] | None = None
    mutation_path: str = ""  # the request that is the mutation (never retried)
    expect: dict[str, type[BackendError]] = field(default_factory=dict)

    def expected(self, fault: str) -> type[BackendError]:
        return self.expect.get(fault, STATUS_ERRORS[fault])


CASES = (
    HttpCase(
        "scrape", "metrics", make_scrape, lambda: scrape_good,
        read=lambda b: b.health("m", "production"),
        # The scrape URL itself answering 404 is a wrong URL, not a missing model; an empty
        # or foreign exposition has no series of the model.
        expect={"http_404": Unreachable, "wrong_shape": InvalidResponse, "empty": NotFound},
    ),
    HttpCase(
        "prometheus", "metrics", make_prometheus, lambda: prometheus_good,
        read=lambda b: b.health("m", "production"),
    ),
    HttpCase(
        "mlflow", "registry", make_mlflow, mlflow_peer,
        read=lambda b: b.versions("m"),
        mutate=lambda b: b.assign("m", "2", "production", actor="rita", expected="1"),
        mutation_path="registered-models/alias",
        # A 404 without MLflow's error_code is a wrong URL or path prefix, not a missing model.
        expect={"http_404": InvalidResponse},
    ),
    HttpCase(
        "github-actions", "ci", make_github, lambda: github_good,
        read=lambda b: b.runs_for(SHA),
        mutate=lambda b: b.deploy("m", "v1.1.0", "production", actor="rita"),
        mutation_path="/dispatches",
    ),
    HttpCase(
        "gitlab-ci", "ci", make_gitlab, lambda: gitlab_good,
        read=lambda b: b.runs_for(SHA),
        mutate=lambda b: b.deploy("m", "v1.1.0", "production", actor="rita"),
        mutation_path="/trigger/pipeline",
    ),
)  # fmt: skip
BY_NAME = {c.name: c for c in CASES}
