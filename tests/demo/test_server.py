"""The demo model server over real loopback HTTP: serving what the registry says, switching
after a new assignment tag, Prometheus metrics, traffic, and the runner's process handling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.demo.build import DemoInfo, build_demo
from console.demo.run import health, metrics_port, run_demo
from console.demo.server import ModelServer
from console.demo.traffic import TrafficGenerator

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def post(url: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def demo(tmp_path: Path) -> DemoInfo:
    return build_demo(tmp_path / "ws", seed=7, now=NOW)


@pytest.fixture
def server(demo: DemoInfo) -> Iterator[ModelServer]:
    srv = ModelServer(demo.path, "127.0.0.1", 0, reload_seconds=0.2, traffic=False)
    with srv:
        assert srv.wait_ready(10)
        yield srv


def serving(server: ModelServer, model: str, stage: str = "production") -> str:
    status, doc = get(f"{server.url}/predict?model={model}&stage={stage}")
    assert status in (200, 500), doc
    return str(doc["version"])


def test_serves_the_current_stage_versions(server: ModelServer) -> None:
    assert serving(server, "price-recommender") == "v1.2.1"  # after the rollback
    assert serving(server, "fraud-detector") == "v1.3.0"
    assert serving(server, "fraud-detector", "staging") == "v2.0.0"
    status, doc = get(f"{server.url}/healthz")
    assert status == 200 and doc["serving"]["churn-predictor"]["production"] == "v1.2.0"
    status, doc = post(
        f"{server.url}/predict?model=churn-predictor", b'{"features": {"plan": "b"}}'
    )
    assert status in (200, 500) and doc["version"] == "v1.2.0"
    if status == 200:
        assert 0.0 <= doc["score"] <= 1.0


def test_errors_are_json_with_a_reason(server: ModelServer) -> None:
    assert get(f"{server.url}/predict?model=nope")[0] == 404
    assert get(f"{server.url}/predict?model=churn-predictor&stage=canary")[0] == 503
    assert post(f"{server.url}/predict?model=churn-predictor", b"[1, 2")[0] == 400
    assert get(f"{server.url}/nowhere")[0] == 404


def test_switches_version_after_a_new_assignment_tag(server: ModelServer, demo: DemoInfo) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_COMMITTER_NAME="Test Person", GIT_COMMITTER_EMAIL="test@example.com")
    counter = 1 + max(
        int(t.rsplit("#", 1)[1]) for t in demo.tags if t.startswith("price-recommender#")
    )
    subprocess.run(
        ["git", "-C", str(demo.path), "tag", "-a", f"price-recommender#production#{counter}",
         "price-recommender@v1.3.0^{commit}", "-m", "promote again"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if (
            get(f"{server.url}/healthz")[1]["serving"]["price-recommender"]["production"]
            == "v1.3.0"
        ):
            break
        time.sleep(0.1)
    assert serving(server, "price-recommender") == "v1.3.0"


def test_metrics_are_prometheus_text(server: ModelServer) -> None:
    for _ in range(5):
        serving(server, "fraud-detector")
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["model_request_latency_seconds"].type == "histogram"
    assert families["model_prediction_score"].type == "histogram"
    assert families["model_requests"].type == "counter"
    totals = [
        s
        for s in families["model_requests"].samples
        if s.name == "model_requests_total" and s.labels["stage"] == "production"
    ]
    assert sum(s.value for s in totals) == 5
    assert {s.labels["outcome"] for s in totals} <= {"ok", "error"}
    assert {s.labels["version"] for s in totals} == {"v1.3.0"}
    counts = [
        s for s in families["model_request_latency_seconds"].samples if s.name.endswith("_count")
    ]
    assert counts[0].labels == {
        "model": "fraud-detector",
        "stage": "production",
        "version": "v1.3.0",
    }


def test_versions_behave_differently(demo: DemoInfo) -> None:
    from console.demo.story import serving_profile

    bad, good = (
        serving_profile("price-recommender", "v1.3.0"),
        serving_profile("price-recommender", "v1.2.1"),
    )
    assert bad.latency_ms > 10 * good.latency_ms and bad.error_rate > 10 * good.error_rate
    unknown = serving_profile("price-recommender", "v9.9.9")
    assert unknown == serving_profile("price-recommender", "v9.9.9") and unknown.error_rate < 0.01


def test_traffic_generator_calls_predict(server: ModelServer) -> None:
    traffic = TrafficGenerator(server.url, server.assignments.targets, rps=40, max_requests=20)
    traffic.start()
    deadline = time.monotonic() + 10
    while traffic.sent < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop()
    assert traffic.sent >= 20 and traffic.failed == 0
    assert not traffic.running


def test_run_demo_serves_then_stops(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_tui(path: Path) -> int:
        port = metrics_port(path / "cd4ml-console.toml")
        seen["url"] = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        # built-in traffic reaches the server within a few seconds
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{seen['url']}/metrics", timeout=5) as response:
                if b"model_requests_total{" in response.read():
                    break
            time.sleep(0.2)
        seen["health"] = health(seen["url"])
        return 7

    assert (
        run_demo(tmp_path / "ws", seed=7, no_tui=False, open_tui=fake_tui, echo=lambda _: None) == 7
    )
    assert seen["health"] and seen["health"]["status"] == "ok"
    assert health(seen["url"], timeout=0.5) is None  # the server was stopped
    assert run_demo(tmp_path / "ws", no_tui=True, echo=lambda _: None) == 0


def test_run_demo_stops_the_server_on_sigterm(tmp_path: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed from the main thread")
    seen: dict[str, str] = {}

    def killed_tui(path: Path) -> int:
        seen["url"] = f"http://127.0.0.1:{metrics_port(path / 'cd4ml-console.toml')}"
        assert health(seen["url"]) is not None
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        run_demo(tmp_path / "ws", open_tui=killed_tui, echo=lambda _: None)
    assert exc.value.code == 128 + signal.SIGTERM
    assert health(seen["url"], timeout=0.5) is None
    assert signal.getsignal(signal.SIGTERM) == before


def shadow_samples(server: ModelServer) -> dict[str, float]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "model_shadow_decisions_total":
                key = f"{s.labels['model']}:{s.labels['stage']}:{s.labels['version']}:" + (
                    f"{s.labels['baseline_version']}:{s.labels['agreement']}"
                )
                out[key] = out.get(key, 0.0) + s.value
            elif s.name == "model_requests_total" and s.labels["stage"] == "staging":
                key = f"{s.labels['model']}:staging:{s.labels['version']}:requests"
                out[key] = out.get(key, 0.0) + s.value
    return out


def test_production_requests_are_mirrored_to_staging(server: ModelServer) -> None:
    """Shadow traffic: staging answers the same requests; its decisions are compared."""
    for _ in range(40):
        serving(server, "fraud-detector")
        serving(server, "churn-predictor")
    deadline = time.monotonic() + 10
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = shadow_samples(server)
        if seen.get("fraud-detector:staging:v2.0.0:requests", 0) >= 40:
            break
        time.sleep(0.1)
    assert seen["fraud-detector:staging:v2.0.0:requests"] == 40
    fraud = {k: v for k, v in seen.items() if k.startswith("fraud-detector:staging:v2.0.0:v1.3.0")}
    assert 30 <= sum(fraud.values()) <= 40  # both answered (no error on either side)
    # churn's staging holds the production version: the same answer, every time
    assert seen.get("churn-predictor:staging:v1.2.0:v1.2.0:differ", 0) == 0
    assert seen.get("churn-predictor:staging:v1.2.0:v1.2.0:agree", 0) >= 35
    direct = get(f"{server.url}/predict?model=fraud-detector&stage=staging")
    assert direct[0] in (200, 500)  # a staging request is not mirrored again


def test_the_same_request_gets_correlated_scores_and_the_same_version_the_same() -> None:
    from console.demo.server import Behaviour

    behaviour = Behaviour(7)
    requests = [behaviour.request() for _ in range(400)]
    a = [behaviour.answer("fraud-detector", "v1.3.0", r) for r in requests]
    b = [behaviour.answer("fraud-detector", "v2.0.0", r) for r in requests]
    again = [behaviour.answer("fraud-detector", "v1.3.0", r) for r in requests]
    assert a == again
    agree = sum(x.decision == y.decision for x, y in zip(a, b, strict=True)) / len(a)
    assert agree > 0.9
