"""The prometheus plugin against a real Prometheus scraping an exporter the test controls and
the demo model server: health and range queries are checked against what was served."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cd4ml_console_prometheus import PLUGIN, PrometheusConfig
from cd4ml_console_prometheus.metrics import PrometheusMetrics, anchored_start, choose_step
from prometheus_peer import (
    COMPARED_PER_S,
    DIFFER_PER_S,
    ERRORS_PER_S,
    LOW_SCORES,
    P95_MS,
    PASSWORD,
    PREDICTION_MEAN,
    RPS,
    USER,
    WINDOW,
    PromServer,
    PromWorld,
    free_port,
)
from pydantic import ValidationError

from console.plugins import BackendContext, discover
from console.plugins import http as tp
from console.ports import (
    BackendError,
    InvalidResponse,
    MetricsSource,
    NotFound,
    Unauthorized,
    Unreachable,
)

# One peer per worker is enough: keep these tests together under `pytest -n N --dist loadgroup`.
pytestmark = pytest.mark.xdist_group("prometheus")
Factory = Callable[..., PrometheusMetrics]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[PrometheusMetrics] = []

    def factory(url: str, **options: Any) -> PrometheusMetrics:
        options.setdefault("window", WINDOW)
        options.setdefault("use_keyring", False)
        options.setdefault("credentials_file", tmp_path / "no-credentials.toml")
        ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=None, timeout=5.0)
        backend = PLUGIN.factory(PrometheusConfig(url=url, **options), ctx)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()


@pytest.fixture
def metrics(prom_world: PromWorld, make: Factory) -> PrometheusMetrics:
    return make(prom_world.prom.url)


def test_the_plugin_is_discovered_through_its_entry_point() -> None:
    catalog = discover()
    plugin = catalog.get("prometheus")
    assert plugin is not None, catalog.problems
    assert plugin.kinds == frozenset({"metrics"})
    assert plugin.distribution.startswith("cd4ml-console-prometheus")


def test_the_backend_is_a_metrics_source(metrics: PrometheusMetrics) -> None:
    assert isinstance(metrics, MetricsSource)


async def test_health_reports_what_the_exporter_served(metrics: PrometheusMetrics) -> None:
    health = await metrics.health("fraud", "production")
    assert health.version == "v1"
    assert health.traffic_rps == pytest.approx(RPS, rel=0.05)
    assert health.error_rate == pytest.approx(ERRORS_PER_S / RPS, rel=1e-6)
    assert health.latency_p95_ms == pytest.approx(P95_MS, rel=1e-6)
    assert health.prediction_mean == pytest.approx(PREDICTION_MEAN, rel=1e-6)
    assert health.observed_at is not None
    assert abs((datetime.now(UTC) - health.observed_at).total_seconds()) < 5

    half = await metrics.health("churn", "production")  # served at half the rate
    assert half.version == "v3"
    assert half.traffic_rps == pytest.approx(RPS / 2, rel=0.05)
    assert half.error_rate == pytest.approx(ERRORS_PER_S / RPS, rel=1e-6)


async def test_series_uses_a_step_chosen_from_the_number_of_points(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    await asyncio.sleep(max(0.0, prom_world.ready_at + 3 - time.time()))  # a few samples
    since = datetime.fromtimestamp(max(prom_world.ready_at, time.time() - 6), UTC)
    series = await metrics.series("fraud", "production", "traffic_rps", since=since, points=7)
    assert series.unit == "req/s" and series.metric == "traffic_rps"
    assert 2 <= len(series.points) <= 7
    stamps = [p.at.timestamp() for p in series.points]
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(stamps))
    assert stamps[0] >= since.timestamp() - 1e-3
    assert abs(stamps[-1] - time.time()) < 2  # the newest point is "now"
    for point in series.points:
        assert point.value == pytest.approx(RPS, rel=0.05)

    p95 = await metrics.series("fraud", "production", "latency_p95_ms", since=since, points=7)
    assert p95.unit == "ms" and p95.points
    assert {round(p.value, 6) for p in p95.points} == {P95_MS}


async def test_default_lookback_and_coarse_steps(metrics: PrometheusMetrics) -> None:
    series = await metrics.series("fraud", "production", "error_rate", points=61)
    assert 1 <= len(series.points) <= 61  # an hour in 60 s steps; the data is younger
    stamps = [p.at.timestamp() for p in series.points]
    assert all(b - a == pytest.approx(60.0) for a, b in itertools.pairwise(stamps))
    assert abs(stamps[-1] - time.time()) < 2
    for point in series.points:
        assert point.value == pytest.approx(ERRORS_PER_S / RPS, rel=1e-6)
    none = await metrics.series("fraud", "production", "error_rate", points=0)
    assert none.points == ()


async def test_a_new_version_shows_in_health_and_in_the_chart(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    switched_at = time.time()
    prom_world.exporter.serve("switch", "production", "v2", factor=2.0)
    deadline = time.monotonic() + 20
    health = await metrics.health("switch", "production")
    while time.monotonic() < deadline:
        health = await metrics.health("switch", "production")
        if health.version == "v2" and time.time() > switched_at + 5.5:
            break
        await asyncio.sleep(0.5)
    assert health.version == "v2"
    assert health.traffic_rps == pytest.approx(2 * RPS, rel=0.05)
    since = datetime.fromtimestamp(switched_at - 3, UTC)
    chart = await metrics.series("switch", "production", "traffic_rps", since=since, points=40)
    assert chart.points[-1].value == pytest.approx(2 * RPS, rel=0.05)
    before = [p.value for p in chart.points if p.at.timestamp() < switched_at]
    assert before and before[0] == pytest.approx(RPS, rel=0.05)


async def test_the_demo_model_server_is_seen_through_prometheus(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    demo = prom_world.demo
    prom_world.prom.wait_for(f'rate(model_requests_total{{job="demo"}}[{WINDOW}]) > 0')
    model, stage = "fraud-detector", "production"
    served = demo.assignments.get(model, stage)
    assert served
    health = await metrics.health(model, stage)
    assert health.version == served
    assert health.traffic_rps is not None and health.traffic_rps > 0
    assert health.latency_p95_ms is not None and health.latency_p95_ms > 0


async def test_an_unknown_model_is_not_found_and_has_an_empty_chart(
    metrics: PrometheusMetrics,
) -> None:
    with pytest.raises(NotFound, match="no series for model 'ghost' in stage 'production'"):
        await metrics.health("ghost", "production")
    series = await metrics.series("ghost", "production", "traffic_rps", points=10)
    assert series.points == ()
    with pytest.raises(NotFound, match="unknown metric"):
        await metrics.series("fraud", "production", "accuracy")


async def test_custom_templates_with_placeholders(prom_world: PromWorld, make: Factory) -> None:
    backend = make(
        prom_world.prom.url,
        queries={
            "traffic_rps": "sum(rate(model_requests_total{model=$model,stage=$stage}[$window]))",
            "error_rate": "vector(0.25)",
        },
    )
    health = await backend.health("fraud", "production")
    assert health.traffic_rps == pytest.approx(RPS, rel=0.05)
    assert health.error_rate == 0.25


async def test_a_template_prometheus_refuses_names_the_key_to_fix(
    prom_world: PromWorld, make: Factory
) -> None:
    backend = make(
        prom_world.prom.url, queries={"traffic_rps": "sum(rate(nope{$selector}[$window]"}
    )
    with pytest.raises(BackendError) as caught:
        await backend.series("fraud", "production", "traffic_rps")
    assert "Prometheus refused the traffic_rps query" in str(caught.value)
    assert caught.value.hint == "fix backends.metrics.queries.traffic_rps"


async def test_a_template_returning_many_series_is_refused(
    prom_world: PromWorld, make: Factory
) -> None:
    backend = make(
        prom_world.prom.url,
        queries={"traffic_rps": "rate(model_requests_total{$selector}[$window])"},
    )
    with pytest.raises(InvalidResponse, match="returned 2 series") as caught:
        await backend.series("fraud", "production", "traffic_rps")
    assert "sum(...)" in caught.value.hint


async def test_check_names_the_version_and_the_pairs(metrics: PrometheusMetrics) -> None:
    said = await metrics.check()
    assert said.startswith("Prometheus 2.")
    assert "model/stage pairs" in said


async def test_an_unreachable_server_is_retried_then_reported(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tp, "BACKOFF", (0.0, 0.0, 0.0))
    backend = make(f"http://user:secret@127.0.0.1:{free_port()}/prom")
    with pytest.raises(Unreachable) as caught:
        await backend.health("fraud", "production")
    text = str(caught.value)
    assert "http://127.0.0.1:" in text and "/prom/api/v1/query" in text
    assert "tried 4 times" in text
    assert "secret" not in text and "user" not in text


async def test_basic_auth_with_a_credential_from_the_environment(
    secured_prometheus: PromServer, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROM_TEST_PASSWORD", PASSWORD)
    good = make(secured_prometheus.url, auth="basic", username=USER, token_env="PROM_TEST_PASSWORD")
    assert "Prometheus 2." in await good.check()
    assert PASSWORD not in repr(good) and PASSWORD not in repr(good.api)
    assert PASSWORD not in repr(await good.api.credential())

    monkeypatch.setenv("PROM_TEST_WRONG", "not-the-password")
    bad = make(secured_prometheus.url, auth="basic", username=USER, token_env="PROM_TEST_WRONG")
    with pytest.raises(Unauthorized, match="refused the credentials") as caught:
        await bad.check()
    assert "not-the-password" not in str(caught.value)

    missing = make(secured_prometheus.url, auth="basic", token_env="PROM_TEST_UNSET")
    with pytest.raises(Unauthorized, match="no credential 'prometheus' found") as caught:
        await missing.check()
    assert "cd4ml-console login prometheus" in caught.value.hint

    anonymous = make(secured_prometheus.url)
    with pytest.raises(Unauthorized, match="HTTP 401"):
        await anonymous.check()


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"window": "5 minutes"}, "not a Prometheus duration"),
        ({"matchers": '{job="x"}'}, "without braces"),
        ({"queries": {"accuracy": "up"}}, "unknown query 'accuracy'"),
        ({"queries": {"traffic_rps": "sum(x{$labels})"}}, "unknown placeholder"),
        ({"queries": {"traffic_rps": "sum(x) $"}}, "unknown placeholder"),
        ({"urll": "x"}, "urll"),
    ],
)
def test_config_errors_name_the_problem(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint.replace("(", r"\(")):
        PrometheusConfig(url="http://127.0.0.1:9090", **options)


@pytest.mark.parametrize(
    ("start", "end", "points", "min_step", "step"),
    [
        (0, 3600, 61, 1, 60),
        (0, 3600, 60, 1, 61.017),
        (0, 10, 11, 1, 1),
        (0, 10, 100, 1, 1),  # never finer than the minimum
        (0, 10, 1, 1, 10),
        (0, 86400 * 30, 60, 1, 43932.204),
        (0, 86400 * 365, 20000, 1, 2867.171),  # Prometheus' 11,000-point limit
    ],
)
def test_choose_step(start: float, end: float, points: int, min_step: float, step: float) -> None:
    assert choose_step(start, end, points, min_step) == pytest.approx(step)


@pytest.mark.parametrize(
    ("start", "end", "step", "first"),
    [(0, 100, 10, 0), (1, 100, 10, 10), (95, 100, 10, 100), (100, 100, 10, 100), (0, 100, 30, 10)],
)
def test_the_grid_ends_now(start: float, end: float, step: float, first: float) -> None:
    assert anchored_start(start, end, step) == pytest.approx(first)


async def until_covered(prom_world: PromWorld, seconds: float) -> None:
    """Until samples cover ``seconds`` after the peer was ready (increase() is exact then)."""
    await asyncio.sleep(max(0.0, prom_world.ready_at + seconds + 1 - time.time()))


async def test_figures_over_a_window_count_what_was_served(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    await until_covered(prom_world, 4)
    got = await metrics.window("fraud", "production", seconds=4)
    assert got.version == "v1" and got.seconds == 4
    # increase() extrapolates to the edges of the range: within a scrape of the exact count
    assert got.requests == pytest.approx(4 * RPS, rel=0.25)
    assert got.errors == pytest.approx(4 * ERRORS_PER_S, rel=0.25)
    assert got.error_rate == pytest.approx(ERRORS_PER_S / RPS, rel=1e-6)
    assert got.latency_p95_ms == pytest.approx(P95_MS, rel=1e-6)
    (low, n_low), (top, n_all) = got.scores
    assert (low, top) == (0.5, float("inf")) and n_low / n_all == pytest.approx(LOW_SCORES / RPS)
    assert got.shadow is None  # production shadows nobody
    one = await metrics.window("fraud", "production", version="v1", seconds=4)
    assert one.requests == pytest.approx(got.requests, rel=0.25)
    with pytest.raises(NotFound, match="version 'v9'"):
        await metrics.window("fraud", "production", version="v9", seconds=4)


async def test_shadow_decisions_of_the_stage_before_production(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    await until_covered(prom_world, 4)
    got = await metrics.window("fraud", "staging", version="v2", seconds=4)
    assert got.shadow is not None and got.shadow.baseline_version == "v1"
    assert got.shadow.compared == pytest.approx(4 * COMPARED_PER_S, rel=0.25)
    assert got.shadow.disagreement == pytest.approx(DIFFER_PER_S / COMPARED_PER_S, rel=1e-6)


async def test_stage_matchers_pick_a_stage_by_other_labels(
    prom_world: PromWorld, make: Factory
) -> None:
    await until_covered(prom_world, 4)
    backend = make(
        prom_world.prom.url,
        stage_matchers={"production": 'track="prod"', "canary": 'track="shadow"'},
    )
    canary = await backend.window("fraud", "canary", seconds=4)  # no series says stage="canary"
    assert canary.version == "v2" and canary.shadow is not None
    prod = await backend.health("fraud", "production")
    assert prod.version == "v1" and prod.traffic_rps == pytest.approx(RPS, rel=0.05)
    chart = await backend.series("fraud", "canary", "error_rate", points=5)
    assert chart.points and chart.points[-1].value == pytest.approx(0.1, rel=1e-6)
    with pytest.raises(ValidationError, match="without braces"):
        PrometheusConfig(url="http://127.0.0.1:9090", stage_matchers={"production": "{x}"})


async def test_the_demo_servers_shadow_traffic_through_prometheus(
    prom_world: PromWorld, metrics: PrometheusMetrics
) -> None:
    """The demo mirrors production to staging: the candidate's figures and its agreement."""
    prom_world.prom.wait_for(
        f'sum(increase(model_shadow_decisions_total{{model="price-recommender"}}[{WINDOW}])) > 0'
    )
    staging = prom_world.demo.assignments.get("price-recommender", "staging")
    prod = prom_world.demo.assignments.get("price-recommender", "production")
    got = await metrics.window("price-recommender", "staging", version=staging, seconds=60)
    assert got.requests and got.requests > 0 and got.latency_p95_ms is not None
    assert got.shadow is not None and got.shadow.baseline_version == prod
    assert got.shadow.compared > 0 and got.scores
