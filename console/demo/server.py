"""The demo model server: serves each model's version in each stage as the GTO registry says
(re-read every second, so a promotion or rollback changes what is served within seconds), with
real Prometheus metrics, a deterministic per-version behaviour and built-in traffic.

Every production request is mirrored to the model's other stages (shadow traffic): the
candidate answers the same request in the background, its figures are labelled with its own
stage, and whether its decision (score >= 0.5) differs from production's is counted in
``model_shadow_decisions_total{agreement="agree"|"differ", baseline_version=...}``.

Run: ``python -m console.demo.server --workspace DIR --host 127.0.0.1 --port P``.
Endpoints: ``/predict?model=NAME[&stage=STAGE]`` (GET or POST JSON), ``/metrics``, ``/healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import queue
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from console.demo.story import PRODUCTION, STAGES, serving_profile

log = logging.getLogger("console.demo.server")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
MAX_LATENCY = 3.0
MAX_BODY = 1 << 16
DECISION_AT = 0.5  # a score at or above it is a positive decision
AGREEMENT = 0.9  # correlation of two versions' scores for the same request
SHADOW_WORKERS = 8
SHADOW_QUEUE = 64


class ServingMetrics:
    """The server's own Prometheus registry and the three metrics the console scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "stage", "version"]
        self.latency = Histogram(
            "model_request_latency_seconds",
            "Time to answer a prediction request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "model_requests",
            "Prediction requests by outcome (ok or error)",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.scores = Histogram(
            "model_prediction_score",
            "Distribution of the scores returned",
            labels,
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.shadow = Counter(
            "model_shadow_decisions",
            "Mirrored requests the shadow version answered, by agreement with production",
            [*labels, "baseline_version", "agreement"],
            registry=self.registry,
        )

    def record(self, model: str, stage: str, version: str, answer: Answer) -> None:
        """One answered request: latency, outcome and (unless it failed) the score."""
        where = (model, stage, version)
        self.latency.labels(*where).observe(answer.latency)
        self.requests.labels(*where, "error" if answer.failed else "ok").inc()
        if not answer.failed:
            self.scores.labels(*where).observe(answer.score)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Assignments:
    """Which version each (model, stage) serves, updated from the registry; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[tuple[str, str], str] = {}
        self._models: set[str] = set()
        self.loaded_at: datetime | None = None

    def get(self, model: str, stage: str) -> str | None:
        with self._lock:
            return self._serving.get((model, stage))

    def known(self, model: str) -> bool:
        with self._lock:
            return model in self._models

    def snapshot(self) -> dict[str, dict[str, str]]:
        with self._lock:
            out: dict[str, dict[str, str]] = {m: {} for m in sorted(self._models)}
            for (model, stage), version in sorted(self._serving.items()):
                out[model][stage] = version
            return out

    def targets(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._serving)

    def update(self, model: str, stages: dict[str, str | None]) -> None:
        with self._lock:
            self._models.add(model)
            for stage, version in stages.items():
                before = self._serving.get((model, stage))
                if version == before:
                    continue
                if version is None:
                    self._serving.pop((model, stage), None)
                else:
                    self._serving[(model, stage)] = version
                log.info("%s %s: now serving %s (was %s)", model, stage, version, before or "-")
            self.loaded_at = datetime.now(UTC)


class RegistryWatcher(threading.Thread):
    """Re-reads the stage assignments through the console's GTO registry backend."""

    def __init__(
        self, workspace: Path, assignments: Assignments, interval: float, stop: threading.Event
    ) -> None:
        super().__init__(name="registry-watcher", daemon=True)
        self.workspace, self.assignments, self.interval, self.stop = (
            workspace,
            assignments,
            interval,
            stop,
        )
        self.ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        from console.backends.gto_registry import GtoRegistry
        from console.plugins import BackendContext
        from console.plugins.options import GtoConfig
        from console.ports import BackendError

        ctx = BackendContext(
            workspace=self.workspace, state_dir=self.workspace / ".cd4ml", config=None, timeout=5
        )
        registry = GtoRegistry(GtoConfig(), ctx)
        failing = False
        try:
            while not self.stop.is_set():
                try:
                    for model in await registry.models():
                        found = {a.stage: a.version for a in await registry.stages(model.name)}
                        self.assignments.update(
                            model.name, {s: found.get(s) for s in {*STAGES, *found}}
                        )
                    self.ready.set()
                    if failing:
                        log.info("registry readable again")
                    failing = False
                except BackendError as exc:
                    if not failing:
                        log.warning("reading the registry failed (keeping what is served): %s", exc)
                    failing = True
                await asyncio.to_thread(self.stop.wait, self.interval)
        finally:
            await registry.aclose()


@dataclass(frozen=True)
class Request:
    """One prediction request: what every version answering it shares (``z``, how risky the
    features look) and a seed of its own."""

    z: float
    seed: int


@dataclass(frozen=True)
class Answer:
    latency: float  # seconds
    failed: bool
    score: float

    @property
    def decision(self) -> bool:
        return self.score >= DECISION_AT


class Behaviour:
    """Deterministic per-version behaviour (from the story) sampled with a seeded RNG. Two
    versions answering the same request give correlated scores (``AGREEMENT``); the same
    version gives the same answer."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def request(self) -> Request:
        with self._lock:
            return Request(z=self._rng.gauss(0, 1), seed=self._rng.getrandbits(32))

    def answer(self, model: str, version: str, request: Request) -> Answer:
        p = serving_profile(model, version)
        rng = random.Random(f"{request.seed}:{model}:{version}")
        latency = p.latency_ms / 1000 * math.exp(p.spread * rng.gauss(0, 1))
        failed = rng.random() < p.error_rate
        mix = AGREEMENT * request.z + math.sqrt(1 - AGREEMENT**2) * rng.gauss(0, 1)
        score = min(1.0, max(0.0, p.score_mean + p.score_sd * mix))
        return Answer(min(latency, MAX_LATENCY), failed, score)


@dataclass(frozen=True)
class ShadowJob:
    model: str
    stage: str
    version: str
    request: Request
    baseline_version: str
    baseline: Answer


class Shadow:
    """Answers mirrored production requests with the other stages' versions, in the background
    (production never waits for a candidate); a full queue drops the mirror, never the request."""

    def __init__(self, metrics: ServingMetrics, behaviour: Behaviour) -> None:
        self.metrics, self.behaviour = metrics, behaviour
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(SHADOW_QUEUE)
        self._threads: list[threading.Thread] = []
        self.dropped = 0

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"shadow-{i}", daemon=True)
            for i in range(SHADOW_WORKERS)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout=MAX_LATENCY + 1)
        self._threads = []

    def mirror(self, job: ShadowJob) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            started = time.perf_counter()
            answer = self.behaviour.answer(job.model, job.version, job.request)
            time.sleep(max(0.0, answer.latency - (time.perf_counter() - started)))
            answer = Answer(time.perf_counter() - started, answer.failed, answer.score)
            self.metrics.record(job.model, job.stage, job.version, answer)
            if not answer.failed and not job.baseline.failed:
                agreement = "agree" if answer.decision == job.baseline.decision else "differ"
                self.metrics.shadow.labels(
                    job.model, job.stage, job.version, job.baseline_version, agreement
                ).inc()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode() + b"\n")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, self.server.app.metrics.render(), CONTENT_TYPE_LATEST)
        elif url.path == "/healthz":
            app = self.server.app
            ready = app.watcher_ready()
            doc = {"status": "ok" if ready else "starting", "serving": app.assignments.snapshot()}
            self._json(200 if ready else 503, doc)
        elif url.path == "/predict":
            self._predict(url.query, None)
        else:
            self._json(
                404, {"error": f"no such endpoint {url.path}; try /predict, /metrics, /healthz"}
            )

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/predict":
            self._json(404, {"error": f"POST {url.path} is not an endpoint; POST /predict"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": f"body larger than {MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": "body is not JSON"})
            return
        if not isinstance(body, dict):
            self._json(400, {"error": 'body must be a JSON object, e.g. {"features": {...}}'})
            return
        self._predict(url.query, body)

    def _predict(self, query: str, body: dict[str, Any] | None) -> None:
        app = self.server.app
        started = time.perf_counter()
        params = {k: v[0] for k, v in parse_qs(query).items()}
        model = params.get("model") or (body or {}).get("model") or ""
        stage = params.get("stage") or PRODUCTION
        if not app.assignments.known(model):
            self._json(404, {"error": f"unknown model {model!r}; pass ?model=NAME"})
            return
        version = app.assignments.get(model, stage)
        if version is None:
            self._json(503, {"error": f"no version of {model} is in {stage}"})
            return
        request = app.behaviour.request()
        answer = app.behaviour.answer(model, version, request)
        time.sleep(max(0.0, answer.latency - (time.perf_counter() - started)))
        answer = Answer(time.perf_counter() - started, answer.failed, answer.score)
        app.metrics.record(model, stage, version, answer)
        if stage == PRODUCTION:
            app.mirror(model, version, request, answer)
        if answer.failed:
            self._json(500, {"error": "inference failed", "model": model, "version": version})
            return
        self._json(
            200,
            {
                "model": model,
                "stage": stage,
                "version": version,
                "score": round(answer.score, 4),
                "request_id": uuid.uuid4().hex[:12],
            },
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: ModelServer


class ModelServer:
    """The HTTP server, the registry watcher and (optionally) the traffic generator together."""

    def __init__(
        self,
        workspace: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 7,
        reload_seconds: float = 1.0,
        traffic: bool = True,
        rps: float = 3.0,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.metrics = ServingMetrics()
        self.assignments = Assignments()
        self.behaviour = Behaviour(seed)
        self.shadow = Shadow(self.metrics, self.behaviour)
        self._stop = threading.Event()
        self._watcher = RegistryWatcher(
            self.workspace, self.assignments, reload_seconds, self._stop
        )
        self._http = _HTTPServer((host, port), _Handler)
        self._http.app = self
        self._threads: list[threading.Thread] = []
        self._traffic = None
        if traffic:
            from console.demo.traffic import TrafficGenerator

            self._traffic = TrafficGenerator(self.url, self.assignments.targets, rps=rps, seed=seed)

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        host = self._http.server_address[0]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{self.port}"

    def watcher_ready(self) -> bool:
        return self._watcher.ready.is_set()

    def mirror(self, model: str, version: str, request: Request, answer: Answer) -> None:
        """Send a production request to every other stage of ``model`` that serves a version."""
        for stage in STAGES:
            shadow = self.assignments.get(model, stage) if stage != PRODUCTION else None
            if shadow is not None:
                self.shadow.mirror(ShadowJob(model, stage, shadow, request, version, answer))

    def start(self) -> ModelServer:
        """Start serving in background threads; returns self."""
        self._watcher.start()
        self.shadow.start()
        http = threading.Thread(
            target=self._http.serve_forever, args=(0.1,), name="http", daemon=True
        )
        http.start()
        self._threads = [self._watcher, http]
        if self._traffic is not None:
            self._traffic.start()
        log.info("serving %s on %s (metrics at %s/metrics)", self.workspace, self.url, self.url)
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._watcher.ready.wait(timeout)

    def stop(self) -> None:
        """Stop traffic, the watcher and the HTTP server; safe to call twice."""
        self._stop.set()
        if self._traffic is not None:
            self._traffic.stop()
        self._http.shutdown()
        self._http.server_close()
        self.shadow.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_stopped(self, parent_pid: int | None = None) -> None:
        """Block until SIGTERM/SIGINT/SIGHUP, or until ``parent_pid`` is gone."""
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        while not self._stop.wait(0.5):
            if parent_pid is not None and os.getppid() != parent_pid:
                log.info("parent process %d is gone; stopping", parent_pid)
                break
        self.stop()


def _seed_of(workspace: Path) -> int:
    try:
        return int(json.loads((workspace / ".cd4ml-demo.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 7


def main(argv: list[str] | None = None) -> int:
    """Command line entry: run the demo model server in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m console.demo.server", description=__doc__)
    parser.add_argument("--workspace", type=Path, required=True, help="the demo's git repo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (logged)")
    parser.add_argument("--reload-seconds", type=float, default=1.0)
    parser.add_argument("--rps", type=float, default=3.0, help="production requests/s per model")
    parser.add_argument("--no-traffic", action="store_true", help="do not generate traffic")
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when it exits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = ModelServer(
            args.workspace,
            args.host,
            args.port,
            seed=_seed_of(args.workspace),
            reload_seconds=args.reload_seconds,
            traffic=not args.no_traffic,
            rps=args.rps,
        )
    except OSError as exc:
        log.error("can not listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 3
    server.start()
    server.serve_until_stopped(args.parent_pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
