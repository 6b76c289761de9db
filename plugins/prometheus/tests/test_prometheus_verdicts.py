"""Verdicts and live gates on figures the real Prometheus computes from the linear exporter
(100 requests/s, 10 % errors, p95 175 ms in production and in staging's shadow traffic)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from cd4ml_console_prometheus import PLUGIN, PrometheusConfig
from prometheus_peer import WINDOW, PromWorld, free_port

from console.config import ConsoleConfig
from console.plugins import BackendContext
from console.services.health import HealthService
from console.services.overview import OverviewService
from console.services.release import gates as g
from console.services.release.facts import gather_live
from console.services.workspace import Workspace

pytestmark = pytest.mark.xdist_group("prometheus")


def workspace(url: str, tmp_path: Path, **config: Any) -> Workspace:
    ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=None, timeout=5.0)
    options = PrometheusConfig(url=url, window=WINDOW, use_keyring=False,
                               credentials_file=tmp_path / "none.toml")  # fmt: skip
    return Workspace(
        config=ConsoleConfig.model_validate(config),
        backends={"metrics": PLUGIN.factory(options, ctx)},
    )


async def covered(prom_world: PromWorld) -> None:
    await asyncio.sleep(max(0.0, prom_world.ready_at + 5 - time.time()))


@pytest.mark.parametrize(
    ("slo", "verdict", "first"),
    [
        ({"p95_ms": 250, "error_rate": 0.2}, "ok", "p95 175 ms ≤ 250 ms"),
        ({"p95_ms": 200, "error_rate": 0.2}, "degraded", "p95 175 ms > 160 ms (80% of 200 ms)"),
        ({"p95_ms": 150, "error_rate": 0.2}, "breach", "p95 175 ms > 150 ms"),
        ({"p95_ms": 250, "error_rate": 0.05}, "breach", "errors 10.0% > 5.0%"),
        ({"p95_ms": 250, "min_requests": 10**6}, "unknown", "only "),
    ],
)
async def test_verdicts_on_what_prometheus_counted(
    prom_world: PromWorld, tmp_path: Path, slo: dict[str, Any], verdict: str, first: str
) -> None:
    await covered(prom_world)
    ws = workspace(prom_world.prom.url, tmp_path, slo={"window": "4s", **slo})
    async with ws:
        got = await HealthService(OverviewService(ws)).model(
            "fraud", {"staging": "v2", "production": "v1"}
        )
    assert [(h.stage, h.verdict) for h in got] == [("staging", verdict), ("production", verdict)]
    assert got[1].reasons[0].startswith(first), got[1].reasons


async def test_unknown_when_prometheus_is_down(tmp_path: Path) -> None:
    ws = workspace(f"http://127.0.0.1:{free_port()}", tmp_path, slo={"p95_ms": 250})
    async with ws:
        h = await HealthService(OverviewService(ws)).stage("fraud", "production")
    assert h.verdict == "unknown" and h.reasons[0].startswith("metrics down: ")


@pytest.mark.parametrize(
    ("live", "failing"),
    [
        ({"min_requests": 100, "max_p95_ms": 250, "max_p95_regression_ms": 10,
          "max_disagreement": 0.1}, set()),
        ({"min_requests": 100, "max_p95_ms": 150}, {"live:p95_ms:max"}),
        ({"min_requests": 100, "max_disagreement": 0.05}, {"live:disagreement:max"}),
        ({"min_requests": 10**6, "max_error_rate": 0.5},
         {"live:requests", "live:error_rate:max"}),
    ],
)  # fmt: skip
async def test_live_gates_on_the_shadow_figures(
    prom_world: PromWorld, tmp_path: Path, live: dict[str, Any], failing: set[str]
) -> None:
    await covered(prom_world)
    policy = {"stages": {"production": {"live": {"window": "4s", **live}}}}
    ws = workspace(prom_world.prom.url, tmp_path, policy=policy)
    async with ws:
        figures = await gather_live(ws, "fraud", "v2", "production", "v1", 5.0)
    assert figures is not None and figures.source_stage == "staging"
    facts = g.GateFacts(model="fraud", version="v2", stage="production", base_version="v1",
                        live=figures)  # fmt: skip
    spec = ws.config.policy.for_stage("production").live
    assert spec is not None
    gates = g.live_gates(spec, facts, figures.candidate.observed_at)  # type: ignore[union-attr]
    assert {x.gate for x in gates if not x.passed} == failing, [x.detail for x in gates]
