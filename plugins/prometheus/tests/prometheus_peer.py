"""Fixtures: a real Prometheus (Debian's package) on a free loopback port, scraping every second
an exporter whose counters this test controls, and the demo model server.

The exporter's counters grow linearly in time, so every rate, ratio and quantile Prometheus
computes from them is known in advance. Skips only when the ``prometheus`` binary is missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import start_http_server

SCRAPE_SECONDS = 1
WINDOW = "4s"
# Basic-auth user of the second Prometheus: bcrypt of PASSWORD (rounds=4: fast).
USER, PASSWORD = "console", "prom-test-password"
PASSWORD_HASH = "$2b$04$KnseemNSKYmrBidcFoLH3uvPeaW.voXywlqaDwwa2lTXlMsI0U7Fm"

# Per served second: 100 requests, 10 of them errors; latencies 50 <=0.05s, 40 <=0.1s,
# 10 <=0.25s, so p95 = 0.1 + 0.15 * (95 - 90) / 10 = 0.175 s; mean prediction 0.7, 30 of the
# scores <= 0.5. Outside production (shadow traffic) 90 decisions a second are compared with
# production's, 6 of them differ.
RPS, ERRORS_PER_S, P95_MS, PREDICTION_MEAN = 100.0, 10.0, 175.0, 0.7
BUCKETS = ((0.05, 50.0), (0.1, 90.0), (0.25, 100.0), (float("inf"), 100.0))
LOW_SCORES, COMPARED_PER_S, DIFFER_PER_S = 30.0, 90.0, 6.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """One (model, stage, version) series that grows while it is being served."""

    model: str
    stage: str
    version: str
    factor: float = 1.0
    since: float = field(default_factory=time.time)
    until: float | None = None

    def seconds(self, now: float) -> float:
        return max(0.0, min(now, self.until or now) - self.since)


class LinearExporter:
    """A prometheus_client collector whose counters are rate x served time, exactly."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served: list[Served] = []

    def serve(self, model: str, stage: str, version: str, factor: float = 1.0) -> None:
        """Start serving ``version`` in (model, stage); stop serving whatever was there."""
        now = time.time()
        with self.lock:
            for s in self.served:
                if (s.model, s.stage) == (model, stage) and s.until is None:
                    s.until = now
            self.served.append(Served(model, stage, version, factor, now))

    def collect(self) -> Iterator[Any]:
        now = time.time()
        # "track" says the same as the stage, as some deployments label it (stage_matchers)
        labels = ["model", "stage", "version", "track"]
        requests = CounterMetricFamily("model_requests", "requests", labels=[*labels, "outcome"])
        latency = HistogramMetricFamily("model_request_latency_seconds", "latency", labels=labels)
        score = HistogramMetricFamily("model_prediction_score", "score", labels=labels)
        shadow = CounterMetricFamily(
            "model_shadow_decisions", "shadow", labels=[*labels, "baseline_version", "agreement"]
        )
        with self.lock:
            served = list(self.served)
        for s in served:
            track = "prod" if s.stage == "production" else "shadow"
            t, key = s.seconds(now) * s.factor, [s.model, s.stage, s.version, track]
            requests.add_metric([*key, "ok"], (RPS - ERRORS_PER_S) * t)
            requests.add_metric([*key, "error"], ERRORS_PER_S * t)
            latency.add_metric(
                key,
                [("+Inf" if le == float("inf") else repr(le), n * t) for le, n in BUCKETS],
                sum_value=0.1 * RPS * t,
            )
            score.add_metric(
                key, [("0.5", LOW_SCORES * t), ("+Inf", RPS * t)],
                sum_value=PREDICTION_MEAN * RPS * t,
            )  # fmt: skip
            if s.stage != "production":
                agree = (COMPARED_PER_S - DIFFER_PER_S) * t
                shadow.add_metric([*key, "v1", "agree"], agree)
                shadow.add_metric([*key, "v1", "differ"], DIFFER_PER_S * t)
        yield requests
        yield latency
        yield score
        yield shadow


def _get(url: str, timeout: float = 2.0, *, raw: bool = False) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, body if raw else json.loads(body or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, None


@dataclass
class PromServer:
    """A running Prometheus; ``url`` is its base URL."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        status, doc = _get(f"{self.url}/api/v1/query?{urlencode({'query': promql})}")
        assert status == 200, doc
        return list(doc["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until ``promql`` returns something (e.g. until a rate has two samples)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{promql} stayed empty for {timeout}s")


def start_prometheus(
    binary: str, work: Path, targets: dict[str, str], web_config: str | None = None
) -> PromServer:
    """Start Prometheus on a free loopback port scraping ``targets`` (job -> host:port)."""
    work.mkdir(parents=True, exist_ok=True)
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in targets.items()
    )
    config = work / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_SECONDS}s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n{jobs}"
    )
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if web_config is not None:
        (work / "web.yml").write_text(web_config)
        argv.append(f"--web.config.file={work / 'web.yml'}")
    log = work / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    server = PromServer(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            status, _ = _get(f"{server.url}/-/ready", 0.5, raw=True)
            if status in (200, 401):
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise TimeoutError(f"prometheus did not become ready: {log.read_text()[-2000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip(
            "the prometheus binary is not installed "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
    return found


@dataclass
class PromWorld:
    """Prometheus scraping the linear exporter and the demo model server."""

    prom: PromServer
    exporter: LinearExporter
    demo: Any  # console.demo.server.ModelServer
    ready_at: float  # from here on every rate window is fully covered by samples


@pytest.fixture(scope="session")
def prom_world(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromWorld]:
    from console.demo.build import build_demo
    from console.demo.server import ModelServer

    work = tmp_path_factory.mktemp("prometheus")
    exporter = LinearExporter()
    exporter.serve("fraud", "production", "v1")
    exporter.serve("fraud", "staging", "v2")
    exporter.serve("churn", "production", "v3", factor=0.5)
    exporter.serve("switch", "production", "v1")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)  # type: ignore[arg-type]
    exporter_port = free_port()
    http, thread = start_http_server(exporter_port, "127.0.0.1", registry)
    demo_info = build_demo(work / "demo", seed=7, now=datetime(2025, 3, 14, 15, 0, tzinfo=UTC))
    demo = ModelServer(demo_info.path, "127.0.0.1", 0, reload_seconds=0.5, rps=20.0)
    demo.start()
    prom = None
    try:
        assert demo.wait_ready(15), "the demo model server did not read its registry"
        prom = start_prometheus(
            prometheus_binary,
            work,
            {"linear": f"127.0.0.1:{exporter_port}", "demo": f"127.0.0.1:{demo.port}"},
        )
        # rate() is exact once samples cover the whole window (no extrapolation at the start)
        prom.wait_for('count_over_time(up{job="linear"}[6s]) >= 6')
        yield PromWorld(prom, exporter, demo, time.time())
    finally:
        if prom is not None:
            stop_process(prom.process)
        demo.stop()
        http.shutdown()
        http.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def secured_prometheus(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromServer]:
    """A second Prometheus that wants HTTP basic auth (and scrapes nothing)."""
    work = tmp_path_factory.mktemp("prometheus-auth")
    prom = start_prometheus(
        prometheus_binary,
        work,
        {},
        web_config=f"basic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n",
    )
    try:
        yield prom
    finally:
        stop_process(prom.process)
