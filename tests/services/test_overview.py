"""services.overview: concurrent, per-port timeouts, a failing port never raises to the caller."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

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
from console.services.backend_names import backend_label
from console.services.overview import OverviewService, describe_error
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
    # The section names the backend as configured (the embedded default here: dvc).
    assert view.sections["data"].error == "data backend dvc did not answer within 0.5s"
    assert view.details["v1.1.0"].commit is not None  # code still answered
    assert view.health is not None


class HangingCI:
    name = "fake-ci"

    async def runs_for(self, commit):
        await asyncio.Event().wait()  # never answers


async def test_ci_read_apart_holds_back_nothing_and_joins_either_way() -> None:
    """The model screen reads a version's facts and its CI runs apart: the facts come without
    waiting for a hanging CI server, marked as CI still to come; the runs join the detail
    whichever came first, with the CI section's error when they fail."""
    from console.tui.screens.versionbook import VersionBook

    service = OverviewService(workspace(ci=HangingCI()))
    versions = Registry().vs[:3]
    started = time.perf_counter()
    facts = await service.version_details("m", versions, with_ci=False)
    assert time.perf_counter() - started < 0.4  # no CI timeout (0.5 s) waited for
    detail = facts["v1.1.0"]
    assert detail.metrics == {"auc": 0.9} and detail.ci_state == "pending"
    assert "ci" not in detail.sections
    runs = await service.version_ci(versions)  # the hanging server times out
    assert runs["v1.1.0"].runs == ()
    assert runs["v1.1.0"].section.error == "ci backend runs-folder did not answer within 0.5s"
    joined = detail.with_ci(runs["v1.1.0"])
    assert joined.ci_read and joined.ci_state == "none" and joined.sections["ci"].error
    assert joined.metrics == detail.metrics and joined.sections["data"] == detail.sections["data"]

    good = OverviewService(workspace())
    facts, runs = (
        await good.version_details("m", versions, with_ci=False),
        await good.version_ci(versions),
    )
    for first, second in (("facts", "ci"), ("ci", "facts")):
        book = VersionBook("production")
        for part in (first, second):
            book.add_details(facts) if part == "facts" else book.add_ci(runs)
        assert {d.ci_state for d in book.details.values()} == {"success"}, first
        assert all(d.metrics == {"auc": 0.9} for d in book.details.values())
    with_both = await good.version_details("m", versions)
    assert with_both["v1.1.0"].ci == book.details["v1.1.0"].ci  # the same as read together


async def test_missing_and_broken_backends_are_sections_not_exceptions() -> None:
    ws = workspace()
    del ws.backends["metrics"]
    ws.backends["ci"] = object()  # a plugin bug: no runs_for method
    view = await OverviewService(ws).model_view("m")
    assert view.sections["metrics"].configured is False and view.health is None
    error = view.sections["ci"].error
    assert error.startswith("ci backend runs-folder failed unexpectedly: AttributeError"), error


async def test_list_models_puts_configured_models_first() -> None:
    config = ConsoleConfig.model_validate({"models": {"zeta": {}, "m": {}}})
    ws = Workspace(config=config, backends={"registry": Registry()})
    models, section = await OverviewService(ws).list_models()
    assert [m.name for m in models] == ["zeta", "m"] and section.ok


async def test_list_models_takes_the_configs_description_when_the_registry_has_none() -> None:
    """GTO's artifacts.yaml often has no description; `status --json` showed "" although the
    config describes the model (the TUI already fell back to the config)."""
    config = ConsoleConfig.model_validate({"models": {"m": {"description": "Scores fraud"}}})
    ws = Workspace(config=config, backends={"registry": Registry()})
    models, _ = await OverviewService(ws).list_models()
    assert [(m.name, m.description) for m in models] == [("m", "Scores fraud")]


# -- which backend hung: messages name it as configured, never with a credential -----------

SECRETS = ("password", "s3cr3t", "user:", "token=", "hunter2")


class Hang:
    """Any backend call never answers."""

    name = "hanging"

    def __getattr__(self, _name):
        async def never(*args, **kwargs):
            await asyncio.sleep(3600)

        return never


def configured(backends: dict) -> ConsoleConfig:
    return ConsoleConfig.model_validate({"timeout_seconds": 0.2, "backends": backends})


async def test_hanging_backend_with_credentials_in_url_names_host_not_secret() -> None:
    config = configured(
        {
            "metrics": {
                "type": "scrape",
                "url": "http://user:password@127.0.0.1:9100/metrics?token=s3cr3t#frag",
            },
            "ci": {
                "type": "github-actions",
                "repository": "acme/fraud-model",
                "api_url": "https://bot:hunter2@ghe.example.com/api/v3?access_token=s3cr3t",
            },
        }
    )
    backends = {"registry": Registry(), "code": Code(), "data": Data()}
    ws = Workspace(config=config, backends={**backends, "ci": Hang(), "metrics": Hang()})
    view = await OverviewService(ws).model_view("m")
    metrics, ci = view.sections["metrics"], view.sections["ci"]
    assert metrics.kind == ci.kind == "timeout"
    assert metrics.error == (
        "metrics backend scrape (http://127.0.0.1:9100/metrics) did not answer within 0.2s"
    )
    assert ci.error == (
        "ci backend github-actions (https://ghe.example.com/api/v3, acme/fraud-model) "
        "did not answer within 0.2s"
    )
    for text in (metrics.error, ci.error):
        assert not any(s in text for s in SECRETS), text
    assert view.sections["data"].ok and view.sections["registry"].ok


@pytest.mark.parametrize(
    ("backends", "kind", "label"),
    [
        ({}, "registry", "registry backend gto"),  # the embedded default
        ({}, "metrics", "metrics backend"),  # not configured, no default
        ({"code": {"type": "git", "path": "../models"}}, "code", "code backend git (../models)"),
        (
            {"ci": {"type": "gitlab-ci", "url": "https://gitlab.example.com/", "project": "ml/x"}},
            "ci",
            "ci backend gitlab-ci (https://gitlab.example.com, ml/x)",
        ),
        (
            {"registry": {"type": "mlflow", "url": "https://u:p@mlflow.example/ml?token=t"}},
            "registry",
            "registry backend mlflow (https://mlflow.example/ml)",
        ),
        (  # a path with control characters stays one line; key=value secrets are masked
            {"ci": {"type": "runs-folder", "path": "runs\n\x1b[2Jtoken=abc"}},
            "ci",
            "ci backend runs-folder (runs [2Jtoken=***)",
        ),
        (  # an unparsable URL is said to be one, not echoed
            {"metrics": {"type": "scrape", "url": "http://user:pw@[::1"}},
            "metrics",
            "metrics backend scrape (<invalid URL>)",
        ),
        (  # a DSN is never shown: it may carry the password
            {"audit": {"type": "postgres", "dsn": "postgresql://a:hunter2@db/x"}},
            "audit",
            "audit backend postgres",
        ),
        ({}, "audit anchor", "audit anchor backend"),  # not a backend kind
    ],
)
def test_backend_label(backends: dict, kind: str, label: str) -> None:
    assert backend_label(configured(backends), kind) == label


def test_backend_label_is_short_and_plain_without_config() -> None:
    assert backend_label(None, "ci") == "ci backend"
    long = configured({"code": {"type": "git", "path": "x" * 500}})
    assert len(backend_label(long, "code")) < 160


def test_describe_error_names_backend_and_redacts_unexpected_text() -> None:
    config = configured({"metrics": {"type": "scrape", "url": "http://a:b@h:9/m?token=t"}})
    assert describe_error(TimeoutError(), "metrics", 1.5, config) == (
        "metrics backend scrape (http://h:9/m) did not answer within 1.5s",
        "timeout",
    )
    message, label = describe_error(
        ValueError("GET http://a:hunter2@h:9/m?token=s3cr3t failed"), "metrics", 1, config
    )
    assert label == "internal error" and "ValueError" in message
    assert "hunter2" not in message and "s3cr3t" not in message, message
    # BackendErrors already say who and where: unchanged.
    err = Unreachable("http://h:9/m refused the connection", backend="scrape")
    assert describe_error(err, "metrics", 1, config) == (str(err), "unreachable")
    # Without a config (old callers) the wording is the kind alone.
    assert describe_error(TimeoutError(), "ci", 1) == (
        "ci backend did not answer within 1s",
        "timeout",
    )


# -- a timeout means the peer did not answer, never that we did not ask yet -----------------


class BusyRegistry:
    """A registry of ``n`` models that answers every call after ``delay`` seconds (well inside
    the timeout), counting the calls in flight: a busy server that does answer everything."""

    name = "fake-registry"

    def __init__(self, n: int, delay: float) -> None:
        self.names = [f"m{i:03d}" for i in range(n)]
        self.delay = delay
        self.in_flight = 0
        self.most = 0
        self.calls = 0

    async def _answer(self) -> None:
        self.calls += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1

    async def models(self):
        return [Model(name=n) for n in self.names]

    async def versions(self, model):
        await self._answer()
        return [ModelVersion(model=model, version="v1.0.0", commit="c" * 40)]

    async def stages(self, model):
        await self._answer()
        return [StageAssignment(model=model, stage="production", version="v1.0.0")]


async def test_waiting_for_a_slot_is_not_a_timeout() -> None:
    """4 calls in flight at most and each answered in 0.2 s: 64 calls queue for 3.2 s, past the
    1 s timeout, yet every one was answered well within it once sent. No model may come back
    with "did not answer" (a loaded machine gave 66-108 of 200 MLflow models that error)."""
    registry = BusyRegistry(32, delay=0.2)
    ws = Workspace(config=ConsoleConfig(timeout_seconds=1.0), backends={"registry": registry})
    service = OverviewService(ws, concurrency=4)
    views = await service.overview(candidates_detail=0, with_params=False)
    assert {v.model.name: v.errors for v in views if v.errors} == {}
    assert [v.stage_version("production") for v in views] == ["v1.0.0"] * 32
    assert registry.most <= 4  # still bounded


class HangingRegistry(BusyRegistry):
    """Never answers a versions/stages call."""

    async def _answer(self) -> None:
        self.calls += 1
        await asyncio.Event().wait()


async def test_calls_queued_behind_a_peer_that_does_not_answer_are_not_sent() -> None:
    """A peer that left a request unanswered for the timeout is not sent the calls queued
    behind it: the overview ends after about one timeout, not one per wave of calls, and the
    queued calls say the peer did not answer."""
    registry = HangingRegistry(32, delay=0)
    ws = Workspace(config=ConsoleConfig(timeout_seconds=0.2), backends={"registry": registry})
    views = await OverviewService(ws, concurrency=4).overview(candidates_detail=0)
    assert registry.calls == 4  # the first wave only
    errors = {v.errors.get("registry", "") for v in views}
    assert all("did not answer" in e for e in errors), errors
