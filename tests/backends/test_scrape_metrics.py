"""ScrapeMetrics against real loopback HTTP servers: prometheus_client's own exporter whose
registry the test drives, and a tiny text server for exact numbers and failure modes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _fixtures_data import context
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

import console.backends.scrape_metrics as scrape_mod
from console.backends.scrape_metrics import ScrapeMetrics, quantile, safe_url
from console.plugins.options import ScrapeConfig
from console.ports import InvalidResponse, MetricsSource, NotFound, Unauthorized, Unreachable


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(scrape_mod, "monotonic", fake)
    return fake


class Exporter:
    """The metrics a model server exposes, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "stage", "version"]
        self.latency = Histogram(
            "model_request_latency_seconds", "latency", labels,
            registry=self.registry, buckets=(0.01, 0.1, 1.0),
        )  # fmt: skip
        self.requests = Counter(
            "model_requests_total", "requests", [*labels, "outcome"], registry=self.registry
        )
        self.score = Histogram(
            "model_prediction_score", "score", labels, registry=self.registry, buckets=(0.5, 1.0)
        )

    def serve(self, version: str, latencies: list[float], errors: int, scores: list[float]) -> None:
        where = ("churn", "production", version)
        for i, seconds in enumerate(latencies):
            self.latency.labels(*where).observe(seconds)
            outcome = "error" if i < errors else "ok"
            self.requests.labels(*where, outcome).inc()
        for score in scores:
            self.score.labels(*where).observe(score)


@pytest.fixture
def exporter() -> Iterator[tuple[Exporter, str]]:
    exp = Exporter()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=exp.registry)
    try:
        yield exp, f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def backend(url: str, tmp_path: Path, timeout: float = 2.0, **options: Any) -> ScrapeMetrics:
    return ScrapeMetrics(ScrapeConfig(url=url, **options), context(tmp_path, timeout=timeout))


@pytest.fixture
async def closing() -> AsyncIterator[list[ScrapeMetrics]]:
    made: list[ScrapeMetrics] = []
    yield made
    for item in made:
        await item.aclose()


async def test_health_from_deltas_between_scrapes(
    exporter: tuple[Exporter, str], tmp_path: Path, clock: Clock, closing: list[ScrapeMetrics]
) -> None:
    exp, url = exporter
    metrics = backend(url, tmp_path, interval_seconds=10)
    closing.append(metrics)
    assert isinstance(metrics, MetricsSource)
    exp.serve("1.0.0", [0.005] * 10, errors=5, scores=[0.2] * 4)

    first = await metrics.health("churn", "production")  # no delta yet: cumulative values
    assert first.version == "1.0.0"
    assert first.error_rate == pytest.approx(0.5)
    assert first.latency_p95_ms == pytest.approx(9.5)  # 0.95 * 10 inside (0, 0.01]
    assert first.traffic_rps is not None and first.traffic_rps > 0  # since the counters' creation
    assert first.prediction_mean == pytest.approx(0.2)

    clock.now += 3  # younger than interval/2: no new scrape, same answer
    exp.serve("1.0.0", [0.05], errors=0, scores=[])
    assert await metrics.health("churn", "production") == first

    clock.now += 7
    exp.serve("1.0.0", [0.05] * 89 + [0.5] * 10, errors=5, scores=[0.9] * 3 + [0.6])
    second = await metrics.health("churn", "production")
    # Buckets of the interval: 90 in (0.01, 0.1], 10 in (0.1, 1]; rank 95 is half-way into the
    # second bucket: 0.1 + 0.9 * 5/10 = 0.55 s.
    assert second.latency_p95_ms == pytest.approx(550.0)
    assert second.error_rate == pytest.approx(5 / 100)
    assert second.traffic_rps == pytest.approx(100 / 10)
    assert second.prediction_mean == pytest.approx(0.825)

    clock.now += 10
    exp.serve("2.0.0", [0.002] * 20, errors=0, scores=[])
    third = await metrics.health("churn", "production")
    assert third.version == "2.0.0"  # the version whose counters moved
    assert third.error_rate == 0.0 and third.traffic_rps == pytest.approx(2.0)
    assert third.prediction_mean is None  # no predictions in the interval

    series = await metrics.series("churn", "production", "traffic_rps", points=2)
    assert [p.value for p in series.points] == [pytest.approx(10.0), pytest.approx(2.0)]
    assert series.unit == "req/s"
    full = await metrics.series("churn", "production", "prediction_mean")
    assert len(full.points) == 2
    assert "1 model/stage pairs" in await metrics.check()


TEXT_V1 = """\
# TYPE model_requests_total counter
model_requests_total{model="m",stage="prod",version="1",outcome="ok"} %d
model_requests_total{model="m",stage="prod",version="1",outcome="error"} %d
# TYPE model_request_latency_seconds histogram
model_request_latency_seconds_bucket{model="m",stage="prod",version="1",le="0.1"} %d
model_request_latency_seconds_bucket{model="m",stage="prod",version="1",le="+Inf"} %d
model_request_latency_seconds_sum{model="m",stage="prod",version="1"} 1.0
model_request_latency_seconds_count{model="m",stage="prod",version="1"} %d
"""


class TextServer:
    """A loopback HTTP server answering every GET with what the test put in it."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes | Callable[[], Iterator[bytes]] = b""
        self.delay = 0.0
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                time.sleep(owner.delay)
                # The console may stop reading (too big, too slow): what is tested.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer()

            def _answer(self) -> None:
                self.send_response(owner.status)
                if callable(owner.body):
                    self.end_headers()
                    for chunk in owner.body():
                        self.wfile.write(chunk)
                    return
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def text_server() -> Iterator[TextServer]:
    server = TextServer()
    yield server
    server.stop()


async def test_counter_reset_and_shared_scrape(
    text_server: TextServer, tmp_path: Path, clock: Clock, closing: list[ScrapeMetrics]
) -> None:
    metrics = backend(text_server.url, tmp_path, interval_seconds=4)
    closing.append(metrics)
    text_server.body = (TEXT_V1 % (90, 10, 50, 100, 100)).encode()
    results = await asyncio.gather(*(metrics.health("m", "prod") for _ in range(10)))
    assert text_server.hits == 1  # ten callers, one scrape
    assert {r.error_rate for r in results} == {0.1}
    assert results[0].traffic_rps is None  # no created timestamps, no interval yet

    clock.now += 5
    text_server.body = (TEXT_V1 % (8, 2, 10, 10, 10)).encode()  # the server restarted
    after = await metrics.health("m", "prod")
    assert after.error_rate == pytest.approx(0.2)
    assert after.traffic_rps == pytest.approx(10 / 5)
    assert text_server.hits == 2
    with pytest.raises(NotFound, match="'other'"):
        await metrics.health("other", "prod")
    with pytest.raises(NotFound, match="unknown metric"):
        await metrics.series("m", "prod", "cpu")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_unreachable_without_secrets(
    tmp_path: Path, closing: list[ScrapeMetrics]
) -> None:
    url = f"http://bob:s3cret@127.0.0.1:{_free_port()}/metrics?token=abc"
    metrics = backend(url, tmp_path)
    closing.append(metrics)
    with pytest.raises(Unreachable) as err:
        await metrics.health("m", "prod")
    text = str(err.value)
    assert "127.0.0.1" in text and "s3cret" not in text and "bob" not in text and "abc" not in text


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (500, b"boom", Unreachable, "HTTP 500"),
        (404, b"", Unreachable, "HTTP 404"),
        (401, b"", Unauthorized, "HTTP 401"),
        (403, b"", Unauthorized, "HTTP 403"),
        (200, b"<html>not metrics</html>\n", InvalidResponse, "Prometheus text format"),
        (200, b"\xff\xfe\xfa", InvalidResponse, "Prometheus text format"),
    ],
)
async def test_http_failures_are_mapped(
    text_server: TextServer,
    tmp_path: Path,
    closing: list[ScrapeMetrics],
    status: int,
    body: bytes,
    error: type[Exception],
    words: str,
) -> None:
    text_server.status, text_server.body = status, body
    url = text_server.url.replace("http://", "http://user:pw@") + "?secret=xyz"
    metrics = backend(url, tmp_path)
    closing.append(metrics)
    with pytest.raises(error) as err:
        await metrics.check()
    assert words in str(err.value) and "xyz" not in str(err.value) and "pw@" not in str(err.value)


async def test_oversized_bodies_are_refused(
    text_server: TextServer, tmp_path: Path, closing: list[ScrapeMetrics]
) -> None:
    line = b'model_requests_total{model="m",stage="prod",outcome="ok"} 1\n' * 16384
    text_server.body = lambda: iter([line] * (21 * 1024 * 1024 // len(line) + 2))  # no length
    metrics = backend(text_server.url, tmp_path)
    closing.append(metrics)
    with pytest.raises(InvalidResponse, match="more than 20 MB"):
        await metrics.health("m", "prod")


async def test_slow_endpoint_times_out(
    text_server: TextServer, tmp_path: Path, closing: list[ScrapeMetrics]
) -> None:
    text_server.delay = 1.0
    metrics = backend(text_server.url, tmp_path, timeout=0.2)
    closing.append(metrics)
    with pytest.raises(Unreachable, match="did not"):
        await metrics.health("m", "prod")


async def test_recent_failure_is_not_retried_at_once(
    text_server: TextServer, tmp_path: Path, clock: Clock, closing: list[ScrapeMetrics]
) -> None:
    text_server.status = 500
    metrics = backend(text_server.url, tmp_path, interval_seconds=10)
    closing.append(metrics)
    for _ in range(3):
        with pytest.raises(Unreachable):
            await metrics.health("m", "prod")
    assert text_server.hits == 1
    clock.now += 6
    text_server.status, text_server.body = 200, (TEXT_V1 % (1, 0, 1, 1, 1)).encode()
    assert (await metrics.health("m", "prod")).error_rate == 0.0


async def test_check_says_when_no_metric_matches(
    text_server: TextServer, tmp_path: Path, closing: list[ScrapeMetrics]
) -> None:
    text_server.body = b"# TYPE up gauge\nup 1\n"
    metrics = backend(text_server.url, tmp_path)
    closing.append(metrics)
    with pytest.raises(InvalidResponse, match="model_request_latency_seconds"):
        await metrics.check()


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ({0.1: 0, 1.0: 0, float("inf"): 0}, None),
        ({0.1: 100, float("inf"): 100}, 0.095),
        ({0.1: 0, 1.0: 0, float("inf"): 10}, 1.0),  # beyond the last finite bound
        ({1.0: 50, 2.0: 100, float("inf"): 100}, 1.9),
    ],
)
def test_quantile(buckets: dict[float, float], expected: float | None) -> None:
    result = quantile(0.95, buckets)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_safe_url() -> None:
    assert safe_url("http://u:p@host:9090/metrics?t=1#x") == "http://host:9090/metrics"
    assert safe_url("http://[::1]:80/m") == "http://[::1]:80/m"


WINDOW_TEXT = """\
# TYPE model_requests_total counter
model_requests_total{{model="m",stage="production",version="v1",outcome="ok"}} {p_ok}
model_requests_total{{model="m",stage="production",version="v1",outcome="error"}} {p_err}
model_requests_total{{model="m",stage="production",version="v0",outcome="ok"}} {old}
model_requests_total{{model="m",stage="staging",version="v2",outcome="ok"}} {s_ok}
model_requests_total{{model="m",stage="staging",version="v2",outcome="error"}} {s_err}
# TYPE model_request_latency_seconds histogram
model_request_latency_seconds_bucket{{model="m",stage="staging",version="v2",le="0.1"}} {s_fast}
model_request_latency_seconds_bucket{{model="m",stage="staging",version="v2",le="1.0"}} {s_all}
model_request_latency_seconds_bucket{{model="m",stage="staging",version="v2",le="+Inf"}} {s_all}
model_request_latency_seconds_count{{model="m",stage="staging",version="v2"}} {s_all}
model_request_latency_seconds_sum{{model="m",stage="staging",version="v2"}} 1.0
# TYPE model_prediction_score histogram
model_prediction_score_bucket{{model="m",stage="staging",version="v2",le="0.5"}} {low}
model_prediction_score_bucket{{model="m",stage="staging",version="v2",le="1.0"}} {s_ok}
model_prediction_score_bucket{{model="m",stage="staging",version="v2",le="+Inf"}} {s_ok}
# TYPE model_shadow_decisions_total counter
model_shadow_decisions_total{{model="m",stage="staging",version="v2",baseline_version="v1",agreement="agree"}} {agree}
model_shadow_decisions_total{{model="m",stage="staging",version="v2",baseline_version="v1",agreement="differ"}} {differ}
"""


def window_text(n: int) -> bytes:
    """``n`` rounds of traffic: production v1 10 req (1 error) a round, v0 1 a round,
    staging v2 answers the mirror of each v1 request (2 errors), 8 agree, 1 differs."""
    return WINDOW_TEXT.format(
        p_ok=9 * n, p_err=n, old=n, s_ok=8 * n, s_err=2 * n, s_fast=5 * n, s_all=10 * n,
        low=4 * n, agree=7 * n, differ=n,
    ).encode()  # fmt: skip


async def test_figures_over_a_window_per_stage_and_version(
    text_server: TextServer, tmp_path: Path, clock: Clock, closing: list[ScrapeMetrics]
) -> None:
    metrics = backend(text_server.url, tmp_path, interval_seconds=4)
    closing.append(metrics)
    text_server.body = window_text(1)
    first = await metrics.window("m", "production", seconds=600)
    assert first.seconds == 0.0  # one reading, no creation times: no window yet
    for n in range(2, 8):  # a scrape every 10 s: 60 s of traffic after the first
        clock.now += 10
        text_server.body = window_text(n)
        await metrics.health("m", "production")
    whole = await metrics.window("m", "production", seconds=600)
    assert (whole.seconds, whole.requests, whole.errors) == (60.0, 66, 6)
    assert whole.version == "v1"  # the busiest version of the stage
    v1 = await metrics.window("m", "production", version="v1", seconds=600)
    assert (v1.requests, v1.errors, v1.error_rate) == (60, 6, 0.1)
    last = await metrics.window("m", "production", version="v1", seconds=20)
    assert (last.seconds, last.requests) == (20.0, 20)  # the tally kept 20 s ago
    shadow = await metrics.window("m", "staging", version="v2", seconds=600)
    assert (shadow.requests, shadow.errors) == (60, 12)
    assert shadow.latency_p95_ms == pytest.approx(100 + 900 * 0.9)  # rank 57 of 60: 2nd bucket
    assert shadow.scores == ((0.5, 24.0), (1.0, 48.0), (float("inf"), 48.0))
    assert shadow.shadow is not None
    assert (shadow.shadow.baseline_version, shadow.shadow.compared, shadow.shadow.differ) == (
        "v1", 48, 6,
    )  # fmt: skip
    with pytest.raises(NotFound, match="'canary'"):
        await metrics.window("m", "canary")
    absent = await metrics.window("m", "production", version="v9", seconds=600)
    assert absent.requests == 0.0 and absent.seconds is None  # the stage serves, not v9


async def test_series_of_one_version(
    text_server: TextServer, tmp_path: Path, clock: Clock, closing: list[ScrapeMetrics]
) -> None:
    metrics = backend(text_server.url, tmp_path, interval_seconds=4)
    closing.append(metrics)
    for n in (1, 2, 3):
        text_server.body = window_text(n)
        await metrics.health("m", "production")
        clock.now += 5
    both = await metrics.series("m", "production", "error_rate")
    v1 = await metrics.series("m", "production", "error_rate", version="v1")
    assert [p.value for p in both.points][-1] == pytest.approx(1 / 11)
    assert [p.value for p in v1.points][-1] == pytest.approx(0.1)


async def test_the_first_reading_counts_since_the_counters_were_created(
    exporter: tuple[Exporter, str], tmp_path: Path, closing: list[ScrapeMetrics]
) -> None:
    exp, url = exporter
    metrics = backend(url, tmp_path)
    closing.append(metrics)
    exp.serve("1.0.0", [0.005] * 10, errors=2, scores=[0.2] * 8)
    got = await metrics.window("churn", "production", seconds=600)
    assert (got.requests, got.errors, got.version) == (10, 2, "1.0.0")
    assert got.seconds is not None and 0 < got.seconds < 60  # since the counters began
