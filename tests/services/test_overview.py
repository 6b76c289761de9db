"""services.overview: concurrent, per-port timeouts, a failing port never raises to the caller."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from console.config import ConsoleConfig
from console.domain import (
    CIConclusion,
    CIRun,
    CIStatus,
    Commit,
    DataOutput,
    DataVersion,
    Model,
    ModelVersion,
    ServingHealth,
    StageAssignment,
)
from console.ports import Unreachable
from console.services.overview import OverviewService
from console.services.workspace import Workspace

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


class Registry:
    name = "fake-registry"

    def __init__(self, n: int = 5) -> None:
        self.vs = [
            ModelVersion(model="m", version=f"v1.{i}.0", commit=f"c{i:039d}", created_by="ann")
            for i in range(n)
        ]

    async def models(self):
        return [Model(name="m")]

    async def versions(self, model):
        return list(reversed(self.vs))  # the service must sort them

    async def stages(self, model):
        return [
            StageAssignment(model="m", stage="production", version="v1.1.0"),
            StageAssignment(model="m", stage="staging", version="v1.3.0"),
        ]


class Code:
    name = "fake-code"

    async def commit(self, rev):
        return Commit(sha=rev, author="ann")


class Data:
    name = "fake-data"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def data_version(self, model, commit):
        await asyncio.sleep(self.delay)
        return DataVersion(commit=commit, outputs=(DataOutput(path="d", md5=commit[-4:]),))

    async def metrics(self, model, commit):
        await asyncio.sleep(self.delay)
        return {"auc": 0.9}

    async def params(self, model, commit):
        return {"lr": 0.1}


class CI:
    name = "fake-ci"

    async def runs_for(self, commit):
        return [
            CIRun(
                id="1",
                pipeline="train",
                commit=commit,
                status=CIStatus.COMPLETED,
                conclusion=CIConclusion.SUCCESS,
            )
        ]


class Metrics:
    name = "fake-metrics"

    def __init__(self) -> None:
        self.fail = False

    async def health(self, model, stage):
        if self.fail:
            raise Unreachable("http://127.0.0.1:9/metrics refused the connection", backend="scrape")
        return ServingHealth(model=model, stage=stage, version="v1.1.0", latency_p95_ms=42.0)


def workspace(**overrides) -> Workspace:
    backends = {
        "registry": Registry(),
        "code": Code(),
        "data": Data(),
        "ci": CI(),
        "metrics": Metrics(),
        **overrides,
    }
    return Workspace(config=ConsoleConfig(timeout_seconds=0.5), backends=backends)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_model_view_orders_stages_and_finds_candidates() -> None:
    view = await OverviewService(workspace()).model_view("m")
    assert [a.stage for a in view.stages] == ["staging", "production"]
    assert [v.version for v in view.versions] == [f"v1.{i}.0" for i in range(5)]
    assert view.candidates == ("v1.2.0", "v1.3.0", "v1.4.0")
    assert view.details["v1.1.0"].metrics == {"auc": 0.9}
    assert view.details["v1.1.0"].ci_state == "success"
    assert view.health is not None and view.health.latency_p95_ms == 42.0
    assert view.errors == {}


async def test_failing_port_gives_error_and_last_good_value() -> None:
    metrics = Metrics()
    clock = Clock()
    service = OverviewService(workspace(metrics=metrics), clock=clock)
    await service.model_view("m")
    clock.now = T0 + timedelta(minutes=3)
    metrics.fail = True
    view = await service.model_view("m")
    section = view.sections["metrics"]
    assert "refused the connection" in section.error and section.kind == "unreachable"
    assert section.fetched_at == T0  # age of the last good data
    assert view.health is not None and view.health.latency_p95_ms == 42.0  # stale, still shown
    assert view.details["v1.1.0"].metrics == {"auc": 0.9}  # other sections unaffected


async def test_slow_port_times_out_alone_and_calls_run_concurrently() -> None:
    service = OverviewService(workspace(data=Data(delay=2.0)))
    started = time.perf_counter()
    view = await service.model_view("m")
    elapsed = time.perf_counter() - started
    assert (
        elapsed < 3.0
    )  # about one timeout (0.5 s); run one after another the 9 data calls take 4.5 s
    assert "did not answer within 0.5s" in view.sections["data"].error
    assert view.details["v1.1.0"].commit is not None  # code still answered
    assert view.health is not None


async def test_missing_and_broken_backends_are_sections_not_exceptions() -> None:
    ws = workspace()
    del ws.backends["metrics"]
    ws.backends["ci"] = object()  # a plugin bug: no runs_for method
    view = await OverviewService(ws).model_view("m")
    assert view.sections["metrics"].configured is False and view.health is None
    assert "failed unexpectedly: AttributeError" in view.sections["ci"].error


async def test_list_models_puts_configured_models_first() -> None:
    config = ConsoleConfig.model_validate({"models": {"zeta": {}, "m": {}}})
    ws = Workspace(config=config, backends={"registry": Registry()})
    models, section = await OverviewService(ws).list_models()
    assert [m.name for m in models] == ["zeta", "m"] and section.ok
