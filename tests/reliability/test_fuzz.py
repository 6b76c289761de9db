"""Fuzz: hypothesis-generated payloads for every parser at the edge of the console — registry
tags, CI run records, Prometheus exposition text, DVC/params/metrics/schema files, the config
TOML, and the HTTP JSON of the mlflow, prometheus, github-actions and gitlab-ci plugins (served
through httpx.MockTransport). Nothing may escape but the documented BackendError (and
ConfigError for the config)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.backends import dvc_data
from console.backends.gto_snapshot import FORMAT, parse_artifacts_yaml, parse_refs
from console.config import ConfigError
from console.config.load import parse_config
from console.git.gto_tags import fold, parse_tag
from console.ports import BackendError
from console.services.workspace import validate_backend_options

from .conftest import LONG
from .http_cases import (
    SHA,
    TOKEN_ENV,
    TRIGGER_ENV,
    make_github,
    make_gitlab,
    make_mlflow,
    make_prometheus,
    make_scrape,
)

EXAMPLES = 1000 if LONG else 120
SLOW_EXAMPLES = 400 if LONG else 40  # each builds a backend with its own httpx client
_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG,
                suppress_health_check=_HEALTH)  # fmt: skip
FUZZ_SLOW = settings(max_examples=SLOW_EXAMPLES, deadline=None, derandomize=not LONG,
                     suppress_health_check=_HEALTH)  # fmt: skip

KEYS = ["status", "data", "result", "resultType", "value", "values", "metric", "version",
        "workflow_runs", "jobs", "id", "head_sha", "created_at", "conclusion", "name", "sha",
        "registered_models", "registered_model", "model_versions", "model_version", "aliases",
        "alias", "tags", "key", "run_id", "next_page_token", "error", "message", "error_code",
        "total_count", "workflow_run_id", "web_url", "html_url", "stages", "outs", "md5",
        "path", "size", "nfiles", "properties", "fields", "columns", "type", "rows", "hash",
        "pipeline", "commit", "actor", "started_at", "finished_at", "junit", "run_number",
        "iid", "ref", "source", "user", "login", "stage"]  # fmt: skip
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from([SHA, "2025-11-13T10:00:00Z", "success", "1", "m",
                                              "vector", "matrix", "completed", "production"])
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), c, max_size=6)
    ),
    max_leaves=25,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = json_values.map(_dumps) | st.binary(max_size=200)


# -- registry tags -------------------------------------------------------------------------

tag_names = st.text(alphabet="mv0123456789.@#!=:/-_abcdeprodstaging", max_size=30)


@FUZZ
@given(st.lists(st.tuples(tag_names, st.sampled_from([b"tag", b"commit"]),
                          st.text(max_size=20), st.text(max_size=20)), max_size=15))  # fmt: skip
def test_registry_tags(refs: list[tuple[str, bytes, str, str]]) -> None:
    out = b""
    for i, (name, objtype, tagger, message) in enumerate(refs):
        fields = [f"refs/tags/{name}".encode(), objtype, (f"{i:040x}").encode(), b"commit",
                  tagger.encode(), b"<a@b>", f"{1700000000 + i} +0000".encode(),
                  message.encode()]  # fmt: skip
        out += b"\0".join(fields) + b"\0\n"
    assert FORMAT
    events, _, _ = parse_refs(out)
    for artifact, evs in events.items():
        fold(artifact, evs)  # a snapshot folds every artifact it holds
    for name, *_ in refs:
        parse_tag(name)


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_artifacts_yaml(data: bytes) -> None:
    # ValueError is the documented signal: GtoRegistry turns it into InvalidResponse.
    with contextlib.suppress(ValueError):
        parse_artifacts_yaml(data)


# -- DVC, params, metrics, schema files ------------------------------------------------------


@FUZZ
@given(bodies, st.sampled_from(["params.yaml", "metrics.json", "dvc.lock", "data/m.dvc",
                                 "schema.json", "stats.json", "p.toml"]))  # fmt: skip
def test_dvc_files(raw: bytes, path: str) -> None:
    try:
        doc = dvc_data.parse_document(raw, SHA, path)
        dvc_data.parse_outs(doc, "m", SHA, path)
        dvc_data.parse_rows(doc)
        dvc_data.numeric_only(dvc_data.flatten(dvc_data._mapping(doc, SHA, path, "metrics")))
        dvc_data.parse_schema(doc, SHA, path)
    except BackendError:
        pass


# -- CI run records --------------------------------------------------------------------------


@FUZZ
@given(st.lists(bodies, min_size=1, max_size=4))
def test_ci_run_records(tmp_path_factory: pytest.TempPathFactory, records: list[bytes]) -> None:
    from console.backends.plugin import RUNS_FOLDER
    from console.plugins.options import RunsFolderConfig

    from .http_cases import context

    ws = tmp_path_factory.mktemp("runs")
    folder = ws / ".ci-runs"
    folder.mkdir()
    for i, raw in enumerate(records):
        (folder / f"run-{i}.json").write_bytes(raw)
    (folder / "x.xml").write_bytes(records[0])
    ci = RUNS_FOLDER.factory(RunsFolderConfig(), context(ws))

    async def go() -> None:
        for call in (ci.runs_for(SHA), ci.check()):
            with contextlib.suppress(BackendError):
                await call

    asyncio.run(go())


# -- Prometheus exposition -------------------------------------------------------------------

metric_lines = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "model_requests_total",
                "model_request_latency_seconds_bucket",
                "model_request_latency_seconds_count",
                "model_prediction_score_sum",
                "# TYPE model_requests_total counter",
                "# HELP x y",
                "x",
            ]
        ),
        st.dictionaries(
            st.sampled_from(["model", "stage", "version", "outcome", "le"]),
            st.sampled_from(["m", "production", "error", "+Inf", "0.1", "", "\\", '"', "NaN"]),
            max_size=5,
        ),
        st.sampled_from(["1", "0", "-1", "NaN", "+Inf", "1e308", "x", ""]),
    ),
    max_size=12,
)


def _exposition(lines: list[tuple[str, dict[str, str], str]]) -> bytes:
    out = []
    for name, labels, value in lines:
        if name.startswith("#"):
            out.append(name)
            continue
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        out.append(f"{name}{{{inner}}} {value}" if labels else f"{name} {value}")
    return ("\n".join(out) + "\n").encode()


@FUZZ_SLOW
@given(st.lists(metric_lines.map(_exposition) | st.binary(max_size=200), min_size=1, max_size=3))
def test_metrics_exposition(tmp_path_factory: pytest.TempPathFactory, scrapes: list[bytes]) -> None:
    backend = make_scrape("http://127.0.0.1:9", tmp_path_factory.mktemp("scrape"))

    async def go() -> None:
        for body in scrapes:
            try:
                samples = backend._parse(body)
                backend._apply(samples, asyncio.get_running_loop().time(), _now())
                health = await backend.health("m", "production")
                assert health.model == "m"
            except BackendError:
                pass
        await backend.aclose()

    asyncio.run(go())


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- config TOML -----------------------------------------------------------------------------

toml_values = st.recursive(
    st.booleans() | st.integers(-5, 5) | st.floats(-10, 10) | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "url",
                    "path",
                    "stages",
                    "timeout_seconds",
                    "required_approvals",
                    "metric",
                    "min",
                    "days",
                    "command",
                    "repository",
                    "project",
                    "dsn",
                    "admin",
                    "default",
                    "production",
                    "staging",
                    "metrics",
                    "registry",
                    "ci",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=15,
)
SECTIONS = ["stages", "production_stage", "backends", "models", "metrics", "policy", "roles",
            "ui", "timeout_seconds", "workspace"]  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS), toml_values, max_size=5) | st.text(max_size=80))
def test_config_toml(doc: Any) -> None:
    text = doc if isinstance(doc, str) else _to_toml(doc)
    try:
        config = parse_config(text, None)
        from console.plugins import discover

        validate_backend_options(config, discover())
    except ConfigError:
        pass


def _to_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer (values that TOML can not hold become strings)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v) if not (isinstance(v, float) and not math.isfinite(v)) else '"nan"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v if not isinstance(x, dict)) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    for key, v in doc.items():
        lines.append(f"{json.dumps(key)} = {value(v)}")
    return "\n".join(lines) + "\n"


# -- the HTTP plugins' JSON ------------------------------------------------------------------


def _mock(backend: Any, handler: Any) -> None:
    """Point an HttpApi-based backend at a MockTransport."""
    api = backend.api
    api.client = httpx.AsyncClient(base_url=api.base_url, transport=httpx.MockTransport(handler))


HTTP = ["mlflow", "prometheus", "github-actions", "gitlab-ci"]


@pytest.mark.parametrize("name", HTTP)
def test_http_json(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "tok")
    monkeypatch.setenv(TRIGGER_ENV, "trig")

    @FUZZ_SLOW
    @given(st.lists(st.tuples(st.sampled_from([200, 200, 200, 201, 204, 400, 404, 500]), bodies),
                    min_size=1, max_size=6))  # fmt: skip
    def check(answers: list[tuple[int, bytes]]) -> None:
        replies = iter(answers * 50)

        def handler(request: httpx.Request) -> httpx.Response:
            status, body = next(replies, (200, b"{}"))
            return httpx.Response(status, content=body,
                                  headers={"content-type": "application/json"})  # fmt: skip

        asyncio.run(_exercise(name, tmp_path, handler))

    check()


async def _exercise(name: str, tmp: Path, handler: Any) -> None:
    from cd4ml_console_github_actions import actions as gh_actions
    from cd4ml_console_gitlab_ci import pipelines as gl_pipelines

    from console.plugins import http as http_api

    async def nosleep(_: float) -> None:
        return None

    http_api.sleep = gh_actions.sleep = gl_pipelines.sleep = nosleep  # type: ignore[assignment]
    try:
        if name == "mlflow":
            from cd4ml_console_mlflow import transport

            transport.BACKOFF = (0.0, 0.0, 0.0)
            backend = make_mlflow("http://mlflow.test", tmp, run_details=True)
            await backend.http._client.aclose()
            backend.http._client = httpx.AsyncClient(base_url="http://mlflow.test",
                                                     transport=httpx.MockTransport(handler))  # fmt: skip
            calls = [backend.models(), backend.versions("m"), backend.stages("m"),
                     backend.history("m"),
                     backend.assign("m", "2", "production", actor="a", expected="1")]  # fmt: skip
        else:
            make = {"prometheus": make_prometheus, "github-actions": make_github,
                    "gitlab-ci": make_gitlab}[name]  # fmt: skip
            backend = make("http://peer.test", tmp)
            await backend.api.client.aclose()
            _mock(backend, handler)
            if name == "prometheus":
                calls = [backend.health("m", "production"),
                         backend.series("m", "production", "error_rate"), backend.check()]  # fmt: skip
            else:
                calls = [backend.runs_for(SHA), backend.check(),
                         backend.deploy("m", "v1", "production", actor="a")]  # fmt: skip
        for call in calls:
            with contextlib.suppress(BackendError):
                await asyncio.wait_for(call, 10)
        await backend.aclose()
    finally:
        http_api.sleep = asyncio.sleep
        gh_actions.sleep = gl_pipelines.sleep = asyncio.sleep
