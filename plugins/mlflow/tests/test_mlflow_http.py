"""HTTP behaviour of the mlflow plugin without a server: error mapping, retries, writes, scale.

An ``httpx.MockTransport`` plays MLflow; shapes follow what the real server answers
(test_mlflow_registry.py checks those against ``mlflow server``).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from cd4ml_console_mlflow import MlflowConfig
from cd4ml_console_mlflow.registry import MlflowRegistry
from mlflow_fakes import MODELS, URL, Handler, auth_header, make, reply

from console.plugins import BackendContext
from console.ports import Conflict, InvalidResponse, NotFound, Unauthorized, Unreachable

API = "/api/2.0/mlflow/"


@pytest.mark.parametrize(
    ("handler", "error", "text"),
    [
        (reply(401, {"error_code": "UNAUTHENTICATED", "message": "bad"}), Unauthorized, "HTTP 401"),
        (reply(403, {"error_code": "PERMISSION_DENIED", "message": "no"}), Unauthorized, "denied"),
        (reply(404, text="<html>nope</html>"), InvalidResponse, "not an MLflow REST API"),
        (reply(404, {"detail": "Not Found"}), InvalidResponse, "wrong url or path prefix"),
        (reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "x"}), NotFound, "x"),
        (reply(400, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "x"}), NotFound, "x"),
        (reply(500, {"error_code": "INTERNAL_ERROR", "message": "db"}), Unreachable, "HTTP 500"),
        (reply(502, text="<html>bad gateway</html>"), Unreachable, "HTTP 502"),
        (reply(200, text="<html>login</html>"), InvalidResponse, "not JSON"),
        (reply(200, {"registered_models": [{"nome": "x"}]}), InvalidResponse, "0.name"),
        (reply(200, {"registered_models": "churn"}), InvalidResponse, "registered_models"),
        (reply(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad filter"}),
         InvalidResponse, "bad filter"),
    ],
)  # fmt: skip
async def test_http_failures_map_to_backend_errors(
    ctx: BackendContext, tmp_path: Path, handler: Handler, error: type, text: str
) -> None:
    reg, _ = make(ctx, handler, tmp_path)
    with pytest.raises(error, match=re.escape(text)) as err:
        await reg.models()
    assert URL in str(err.value)
    await reg.aclose()


async def test_reads_retry_three_times_then_give_up(ctx: BackendContext, tmp_path: Path) -> None:
    reg, rec = make(ctx, reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE"}), tmp_path)
    with pytest.raises(Unreachable):
        await reg.models()
    assert len(rec.requests) == 4  # one try + three retries

    answers = iter([reply(503)] * 2 + [reply(200, MODELS)])
    reg, rec = make(ctx, lambda r: next(answers)(r), tmp_path)
    assert [m.name for m in await reg.models()] == ["churn"]
    assert len(rec.requests) == 3


async def test_connection_errors_are_unreachable_naming_the_url(
    ctx: BackendContext, tmp_path: Path
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    reg, rec = make(ctx, refuse, tmp_path)
    with pytest.raises(Unreachable, match=r"can not connect to MLflow at http://mlflow.test:5000"):
        await reg.check()
    assert len(rec.requests) >= 4

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    reg, _ = make(ctx, slow, tmp_path)
    with pytest.raises(Unreachable, match="did not answer within"):
        await reg.models()


async def test_a_closed_loopback_port_is_unreachable_quickly(ctx: BackendContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        config = MlflowConfig(url=f"http://127.0.0.1:{port}", auth="none", use_keyring=False)
        reg = MlflowRegistry(config, ctx)
        started = time.monotonic()
        with pytest.raises(Unreachable, match=f"127.0.0.1:{port}"):
            await reg.models()
    assert time.monotonic() - started < 5
    await reg.aclose()


def alias_server(state: dict[str, str], *, fail_write: int | None = None) -> Handler:
    """Serves registered-models/alias and model-versions/get for model 'm' (versions 1-3)."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/2.0/mlflow/")
        if path == "registered-models/alias" and request.method == "GET":
            alias = request.url.params["alias"]
            if alias not in state:
                return httpx.Response(
                    400,
                    json={"error_code": "INVALID_PARAMETER_VALUE",
                          "message": f"Registered model alias {alias} not found."},
                )  # fmt: skip
            return httpx.Response(
                200, json={"model_version": {"name": "m", "version": state[alias]}}
            )
        if path == "model-versions/get":
            version = request.url.params["version"]
            if version not in {"1", "2", "3"}:
                return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST"})
            return httpx.Response(200, json={"model_version": {"name": "m", "version": version}})
        if path == "registered-models/alias" and request.method == "POST":
            body = json.loads(request.content)
            state[body["alias"]] = body["version"]
            if fail_write:
                return httpx.Response(fail_write, json={"error_code": "INTERNAL_ERROR"})
            return httpx.Response(200, json={})
        if path == "registered-models/alias" and request.method == "DELETE":
            state.pop(json.loads(request.content)["alias"], None)
            return httpx.Response(200, json={})
        if path == "model-versions/set-tag":
            return httpx.Response(200, json={})
        raise AssertionError(f"unexpected {request.method} {path}")

    return handle


async def test_writes_are_never_retried(ctx: BackendContext, tmp_path: Path) -> None:
    state = {"champion": "1"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("registered-models/alias"):
            return httpx.Response(503, json={"error_code": "TEMPORARILY_UNAVAILABLE"})
        return alias_server(state)(request)

    reg, rec = make(ctx, handler, tmp_path, stage_aliases={"production": "champion"})
    with pytest.raises(Unreachable, match="HTTP 503"):
        await reg.assign("m", "2", "production", actor="carol", expected="1")
    writes = [r for r in rec.requests if r.method == "POST"]
    assert len(writes) == 1
    assert state == {"champion": "1"}


async def test_a_failed_looking_write_that_landed_is_read_back_and_accepted(
    ctx: BackendContext, tmp_path: Path
) -> None:
    state = {"champion": "1"}
    reg, rec = make(
        ctx, alias_server(state, fail_write=504), tmp_path, stage_aliases={"production": "champion"}
    )
    done = await reg.assign("m", "2", "production", actor="carol", expected="1")
    assert done.version == "2" and state == {"champion": "2"}
    assert rec.paths().count("model-versions/set-tag") == 3


async def test_assign_into_an_empty_stage_expects_none(ctx: BackendContext, tmp_path: Path) -> None:
    state: dict[str, str] = {}
    reg, _ = make(ctx, alias_server(state), tmp_path)
    with pytest.raises(Conflict, match="points at nothing, not 1"):
        await reg.assign("m", "2", "staging", actor="carol", expected="1")
    done = await reg.assign("m", "2", "staging", actor="carol", expected=None)
    assert done.version == "2" and state == {"staging": "2"}


async def test_unassign_deletes_the_alias_with_the_same_checks(
    ctx: BackendContext, tmp_path: Path
) -> None:
    state = {"champion": "2"}
    reg, rec = make(ctx, alias_server(state), tmp_path, stage_aliases={"production": "champion"})
    with pytest.raises(Conflict, match="now points at 2, not 1"):
        await reg.unassign("m", "production", actor="carol", expected="1")
    done = await reg.unassign("m", "production", actor="carol", expected="2")
    assert done.version is None and state == {}
    assert [r.method for r in rec.requests].count("DELETE") == 1


async def test_a_401_makes_the_next_call_look_the_credential_up_again(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([reply(401, {"error_code": "UNAUTHENTICATED"}), reply(200, MODELS)])
    reg, rec = make(ctx, lambda r: next(answers)(r), tmp_path, auth="auto")
    with pytest.raises(Unauthorized):
        await reg.models()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "fresh-token")  # e.g. after a login
    await reg.models()
    assert auth_header(rec) == "Bearer fresh-token"


# -- scale --------------------------------------------------------------------------------


async def test_ten_thousand_versions_in_few_requests(ctx: BackendContext, tmp_path: Path) -> None:
    n = 10_000
    versions = [
        {"name": "big", "version": str(i), "run_id": f"{i:032x}", "creation_timestamp": i}
        for i in range(1, n + 1)
    ]

    def run(rid: str) -> dict[str, Any]:
        return {
            "info": {"run_id": rid, "experiment_id": "1", "status": "FINISHED"},
            "data": {"metrics": [{"key": "auc", "value": 0.9}],
                     "tags": [{"key": "mlflow.source.git.commit", "value": rid + "00000000"}]},
        }  # fmt: skip

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/2.0/mlflow/")
        if path == "registered-models/get":
            return httpx.Response(200, json={"registered_model": {
                "name": "big", "aliases": [{"alias": "production", "version": "9999"}]}})  # fmt: skip
        if path == "model-versions/search":
            start = int(request.url.params.get("page_token") or 0)
            size = int(request.url.params["max_results"])
            page: dict[str, Any] = {"model_versions": versions[start : start + size]}
            if start + size < n:
                page["next_page_token"] = str(start + size)
            return httpx.Response(200, json=page)
        if path == "experiments/search":
            return httpx.Response(200, json={"experiments": [{"experiment_id": "1"}]})
        if path == "runs/search":
            ids = re.findall(r"'([0-9a-f]{32})'", json.loads(request.content)["filter"])
            return httpx.Response(200, json={"runs": [run(r) for r in ids]})
        raise AssertionError(path)

    reg, rec = make(ctx, handle, tmp_path)
    started = time.perf_counter()
    got = await reg.versions("big")
    first = time.perf_counter() - started
    assert len(got) == n and got[-1].version == str(n) and got[9998].stages == ("production",)
    assert got[0].commit == f"{1:032x}00000000" and got[0].metrics == {"auc": 0.9}
    assert len(rec.requests) == 1 + 10 + 1 + 100  # model, pages, experiments, run batches
    rec.requests.clear()
    started = time.perf_counter()
    await reg.versions("big")
    again = time.perf_counter() - started
    assert "runs/search" not in rec.paths()  # finished runs are cached
    assert first < 10 and again < 5, (first, again)


def _slow(body: dict[str, Any], log: list[str], delay: float = 0.02) -> Any:
    """An async MockTransport handler answering ``body`` after ``delay``; logs in/out."""

    async def handle(request: httpx.Request) -> httpx.Response:
        log.append("in")
        await asyncio.sleep(delay)
        log.append("out")
        return httpx.Response(200, json=body)

    return handle


async def test_identical_reads_in_flight_share_one_request(
    ctx: BackendContext, tmp_path: Path
) -> None:
    log: list[str] = []
    reg, rec = make(ctx, _slow({"registered_model": {"name": "churn"}}, log), tmp_path)
    a, b = await asyncio.gather(reg._registered("churn"), reg._registered("churn"))
    assert a.name == b.name == "churn" and len(rec.requests) == 1
    await reg._registered("churn")  # the first one landed: a new request
    assert len(rec.requests) == 2
    # one caller giving up does not cancel the answer of the other
    first = asyncio.ensure_future(reg._registered("churn"))
    second = asyncio.ensure_future(reg._registered("churn"))
    await asyncio.sleep(0.005)
    first.cancel()
    assert (await second).name == "churn" and len(rec.requests) == 3
    await reg.aclose()


async def test_a_read_after_a_write_is_never_the_one_in_flight_before_it(
    ctx: BackendContext, tmp_path: Path
) -> None:
    log: list[str] = []
    reg, rec = make(ctx, _slow({"registered_model": {"name": "churn"}}, log), tmp_path)
    before = asyncio.ensure_future(reg._registered("churn"))
    await asyncio.sleep(0.005)
    await reg.http.write("POST", "registered-models/alias", {"name": "churn"})
    after = await reg._registered("churn")
    await before
    assert after.name == "churn"
    assert rec.paths() == [
        "registered-models/get", "registered-models/alias", "registered-models/get"
    ]  # fmt: skip
    await reg.aclose()


async def test_requests_in_flight_are_bounded(ctx: BackendContext, tmp_path: Path) -> None:
    from cd4ml_console_mlflow.transport import CONCURRENCY

    log: list[str] = []
    reg, rec = make(ctx, _slow({"registered_model": {"name": "m"}}, log, 0.01), tmp_path)
    await asyncio.gather(*(reg._registered(f"m{i}") for i in range(3 * CONCURRENCY)))
    depth = peak = 0
    for event in log:
        depth += 1 if event == "in" else -1
        peak = max(peak, depth)
    assert len(rec.requests) == 3 * CONCURRENCY and peak == CONCURRENCY
    await reg.aclose()


async def test_stages_read_the_tags_of_the_listing_versions_is_making(
    ctx: BackendContext, tmp_path: Path
) -> None:
    tags = [{"key": "cd4ml.stage.production.assigned_by", "value": "alice"}]
    answers = {
        "registered-models/get": {"registered_model": {
            "name": "churn", "aliases": [{"alias": "production", "version": "2"}]}},
        "model-versions/search": {"model_versions": [
            {"name": "churn", "version": "1"}, {"name": "churn", "version": "2", "tags": tags}]},
        "model-versions/get": {"model_version": {"name": "churn", "version": "2", "tags": tags}},
    }  # fmt: skip

    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json=answers[request.url.path.removeprefix(API)])

    reg, rec = make(ctx, handle, tmp_path, run_details=False)
    versions, stages = await asyncio.gather(reg.versions("churn"), reg.stages("churn"))
    assert versions[1].stages == ("production",) and stages[0].assigned_by == "alice"
    assert sorted(rec.paths()) == ["model-versions/search", "registered-models/get"]
    rec.requests.clear()
    assert (await reg.stages("churn"))[0].assigned_by == "alice"  # alone: one get per stage
    assert rec.paths() == ["registered-models/get", "model-versions/get"]
    await reg.aclose()


async def test_waiting_for_a_slot_does_not_eat_a_requests_time(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot, each answer 0.2 s: the third request waits 0.4 s before it is sent. It still
    gets its whole time (the retry budget runs from the send), never what the queue left."""
    from cd4ml_console_mlflow import transport

    monkeypatch.setattr(transport, "CONCURRENCY", 1)
    monkeypatch.setattr(transport, "RETRY_BUDGET", 0.3)
    log: list[str] = []
    reg, _ = make(ctx, _slow({"registered_model": {"name": "m"}}, log, 0.2), tmp_path)
    given: list[float] = []
    send = reg.http._send

    async def spy(method: str, path: str, params: Any, body: Any, timeout: float) -> Any:
        given.append(timeout)
        return await send(method, path, params, body, timeout)

    monkeypatch.setattr(reg.http, "_send", spy)
    await asyncio.gather(*(reg._registered(f"m{i}") for i in range(3)))
    assert given == [pytest.approx(0.3)] * 3
    await reg.aclose()


def many_models(n: int, versions: int, *, with_in: bool = True) -> Handler:
    """A registry of ``n`` models with ``versions`` versions each, their runs, and searches
    over many names (``name IN (...)``), or only ``name='...'`` when not ``with_in``."""
    names = [f"m{i:03d}" for i in range(n)]

    def version(name: str, j: int) -> dict[str, Any]:
        tags = [{"key": "cd4ml.stage.production.assigned_by", "value": "ann"}] if j == 2 else []
        return {"name": name, "version": str(j), "run_id": f"{name}r{j}".ljust(32, "0"),
                "tags": tags, "creation_timestamp": j}  # fmt: skip

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(API)
        if path == "registered-models/search":
            return httpx.Response(200, json={"registered_models": [
                {"name": m, "aliases": [{"alias": "production", "version": "2"}]}
                for m in names]})  # fmt: skip
        if path == "registered-models/get":
            name = request.url.params["name"]
            return httpx.Response(200, json={"registered_model": {
                "name": name, "aliases": [{"alias": "production", "version": "2"}]}})  # fmt: skip
        if path == "model-versions/search":
            query = request.url.params["filter"]
            if " IN " in query and not with_in:
                return httpx.Response(400, json={"error_code": "INVALID_PARAMETER_VALUE",
                                                 "message": "bad filter"})  # fmt: skip
            asked = re.findall(r"'([^']+)'", query)
            return httpx.Response(200, json={"model_versions": [
                version(m, j) for m in asked for j in range(1, versions + 1)]})  # fmt: skip
        if path == "model-versions/get":
            name, j = request.url.params["name"], int(request.url.params["version"])
            return httpx.Response(200, json={"model_version": version(name, j)})
        if path == "experiments/search":
            return httpx.Response(200, json={"experiments": [{"experiment_id": "1"}]})
        if path in ("runs/search", "runs/get"):
            if path == "runs/get":
                ids = [request.url.params["run_id"]]
            else:
                ids = re.findall(r"'([0-9a-z]{32})'", json.loads(request.content)["filter"])
            runs = [{"info": {"run_id": r, "status": "FINISHED"}, "data": {
                "metrics": [{"key": "auc", "value": 0.9}],
                "tags": [{"key": "mlflow.source.git.commit", "value": r.ljust(40, "0")}]}}
                for r in ids]  # fmt: skip
            return httpx.Response(200, json={"runs": runs} if path == "runs/search"
                                  else {"run": runs[0]})  # fmt: skip
        raise AssertionError(path)

    return handle


@pytest.mark.parametrize("with_in", [True, False])
async def test_a_snapshot_of_many_models_takes_a_few_requests(
    ctx: BackendContext, tmp_path: Path, with_in: bool
) -> None:
    """120 models x 3 versions: the models and their aliases in one search, their versions
    in searches over 50 names each (one per model where the server refuses IN), the runs of
    the versions shown in searches over 100 run ids; the same versions and stages as the
    per-model reads give."""
    reg, rec = make(ctx, many_models(120, 3, with_in=with_in), tmp_path)
    names = [f"m{i:03d}" for i in range(120)]
    snap = await reg.snapshot(names)
    searches = 3 if with_in else 3 + 120
    assert Counter(rec.paths()) == {
        "registered-models/search": 1, "model-versions/search": searches,
    }  # fmt: skip
    assert all(not e.complete for e in snap.values())
    rec.requests.clear()
    shown = [v for e in snap.values() for v in e.versions if v.version == "2"]
    done = await reg.complete_versions(shown)
    assert Counter(rec.paths()) == {"experiments/search": 1, "runs/search": 2}
    for name in ("m000", "m077"):
        versions = await reg.versions(name)
        assert snap[name].stages == await reg.stages(name)
        assert snap[name].stages[0].assigned_by == "ann"
        assert done[(name, "2")] == versions[1]
        assert [v.version for v in snap[name].versions] == [v.version for v in versions]
        assert snap[name].versions[0].metrics == {} and versions[0].metrics == {"auc": 0.9}
    await reg.aclose()


@pytest.fixture
def plain_http_server() -> Any:
    """A plain loopback HTTP server that is not MLflow: 404 with an HTML page for every path."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotMlflow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html>\n<html><title>404 Not Found</title>\n<h1>Not Found</h1></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_a_server_that_is_not_mlflow_is_a_wrong_url_not_a_missing_model(
    ctx: BackendContext, plain_http_server: str
) -> None:
    config = MlflowConfig(url=plain_http_server, auth="none", use_keyring=False)
    reg = MlflowRegistry(config, ctx)
    for read in (reg.versions("churn"), reg.stages("churn"), reg.history("churn"), reg.check()):
        with pytest.raises(InvalidResponse) as err:
            await read
        text = str(err.value)
        assert "not an MLflow REST API" in text and plain_http_server in text
        assert "no registered model" not in text and "check the name" not in text
    await reg.aclose()


def test_promote_against_a_server_that_is_not_mlflow_fails_as_a_backend(
    plain_http_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 (a backend failed, nothing changed), not 2 (an unknown model: the user's typo)."""
    import os
    import subprocess

    from click.testing import CliRunner

    from console.cli.group import cli

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "cd4ml-console.toml").write_text(
        f'[backends.registry]\ntype = "mlflow"\nurl = "{plain_http_server}"\nauth = "none"\n'
        "use_keyring = false\n"
    )
    monkeypatch.setenv("CD4ML_LOG_FILE", os.devnull)
    args = ["-w", str(tmp_path), "promote", "churn", "1", "--to", "production", "--reason", "go"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    assert "not an MLflow REST API" in result.stderr
    assert "nothing was changed" in result.stderr
