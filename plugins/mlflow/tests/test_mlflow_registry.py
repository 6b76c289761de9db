"""The mlflow registry plugin against a real ``mlflow server`` seeded by mlflow's own client."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from cd4ml_console_mlflow import MlflowConfig
from cd4ml_console_mlflow.registry import MlflowRegistry

from console.domain import RegistryEventKind
from console.plugins import BackendContext
from console.ports import Conflict, InvalidResponse, NotFound

pytestmark = pytest.mark.xdist_group("mlflow-server")  # one server per session: keep together


@pytest.fixture
async def make_registry(
    mlflow_server: Any, ctx: BackendContext
) -> AsyncIterator[Callable[..., MlflowRegistry]]:
    """Build registries on the seeded server (no auth); all are closed after the test."""
    made: list[MlflowRegistry] = []

    def make(**options: Any) -> MlflowRegistry:
        options = {
            "url": mlflow_server.url,
            "auth": "none",
            "use_keyring": False,
            "stage_aliases": {"production": "champion"},
            **options,
        }
        reg = MlflowRegistry(MlflowConfig(**options), ctx)
        made.append(reg)
        return reg

    yield make
    for reg in made:
        await reg.aclose()


@pytest.fixture
def registry(make_registry: Callable[..., MlflowRegistry]) -> MlflowRegistry:
    return make_registry(page_size=2)  # small pages: paging is exercised on every read


async def test_check_names_version_url_and_count(registry: MlflowRegistry) -> None:
    line = await registry.check()
    assert re.match(r"^MLflow 3\.\d+\.\d+ at http://127\.0\.0\.1:\d+: 5 registered models", line)
    assert line.endswith("(no auth)")


async def test_models_are_read_across_pages(registry: MlflowRegistry) -> None:
    models = await registry.models()
    assert [m.name for m in models] == ["churn", "fraud", "promo", "race", "stale"]
    churn = models[0]
    assert churn.description == "churn model"
    assert churn.labels == ("team=risk",)


async def test_versions_carry_run_lineage_and_stages(
    registry: MlflowRegistry, mlflow_server: Any
) -> None:
    seeded = mlflow_server.seeded["models"]["churn"]["versions"]
    versions = await registry.versions("churn")
    assert [v.version for v in versions] == ["1", "2", "3", "4", "5"]
    for v, s in zip(versions, seeded, strict=True):
        assert v.commit == s["commit"]
        assert v.created_by == s["user"]  # no auth on the server: the run's user
        assert isinstance(v.created_at, datetime) and v.created_at.tzinfo is not None
        assert v.tags["mlflow.run_id"] == s["run_id"]
    v2 = versions[1]
    assert v2.metrics == {"auc": pytest.approx(0.81), "latency_ms": 19.0}
    assert v2.params == {"learning_rate": 0.2, "n_estimators": 110, "model_type": "gbm"}
    assert v2.tags["mlflow.datasets"] == "train@d0000001 (training)"
    assert v2.tags["seed"] == "1"
    assert [v.stages for v in versions] == [(), ("production",), ("staging",), (), ()]
    assert versions[4].tags["mlflow.aliases"] == "canary"  # an alias no stage maps to


async def test_batched_run_lookup_gives_the_same_versions_and_caches(
    make_registry: Callable[..., MlflowRegistry],
) -> None:
    plain = await make_registry().versions("churn")
    reg = make_registry()
    reg.runs.batch_threshold = 1  # force runs/search with run_id IN (...)
    assert await reg.versions("churn") == plain

    async def no_more_requests(run_ids: list[str]) -> dict[str, Any]:
        raise AssertionError(f"finished runs should come from the cache: {run_ids}")

    reg.runs._search = no_more_requests
    reg.runs._get = no_more_requests
    assert await reg.versions("churn") == plain


async def test_stages_map_aliases_to_console_stages(registry: MlflowRegistry) -> None:
    stages = {s.stage: s for s in await registry.stages("churn")}
    assert set(stages) == {"production", "staging"}
    assert stages["production"].version == "2"
    assert stages["production"].ref == "alias champion"
    assert stages["staging"].version == "3"
    assert stages["staging"].assigned_by == ""  # set by mlflow's client, not by the console


async def test_promote_then_roll_back_is_visible_to_mlflows_client(
    registry: MlflowRegistry, mlflow_server: Any
) -> None:
    done = await registry.assign(
        "promo", "3", "staging", actor="carol", message="auc +0.01", expected="2"
    )
    assert (done.version, done.assigned_by, done.ref) == ("3", "carol", "alias staging")

    seen = mlflow_server.dump("promo")  # mlflow's own client reads what we wrote
    assert seen["aliases"] == {"champion": "1", "staging": "3"}
    tags = seen["versions"]["3"]
    assert tags["cd4ml.stage.staging.assigned_by"] == "carol"
    assert tags["cd4ml.stage.staging.message"] == "auc +0.01"
    assert datetime.fromisoformat(tags["cd4ml.stage.staging.assigned_at"]) == done.assigned_at

    staging = {s.stage: s for s in await registry.stages("promo")}["staging"]
    assert (staging.version, staging.assigned_by) == ("3", "carol")

    back = await registry.assign("promo", "2", "staging", actor="dave", expected="3")
    assert back.version == "2"
    history = await registry.history("promo")
    assigns = [(e.version, e.stage, e.actor) for e in history if e.kind is RegistryEventKind.ASSIGN]
    assert assigns == [("3", "staging", "carol"), ("2", "staging", "dave")]
    registers = [e.version for e in history if e.kind is RegistryEventKind.REGISTER]
    assert registers == ["1", "2", "3"]
    assert [e.at for e in history] == sorted(e.at for e in history if e.at)


async def test_stale_expected_is_a_conflict_and_changes_nothing(registry: MlflowRegistry) -> None:
    with pytest.raises(Conflict) as err:
        await registry.assign("stale", "1", "production", actor="carol", expected="1")
    assert (err.value.expected, err.value.actual) == ("1", "2")
    assert "alias 'champion'" in str(err.value) and "now points at 2" in str(err.value)
    stages = {s.stage: s.version for s in await registry.stages("stale")}
    assert stages == {"production": "2"}


async def test_concurrent_alias_change_is_detected_after_the_write(
    registry: MlflowRegistry, mlflow_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = registry.http.write

    async def write_then_someone_else_moves_it(method: str, endpoint: str, body: Any) -> None:
        await real_write(method, endpoint, body)
        if endpoint == "registered-models/alias":  # another writer, straight after us
            async with httpx.AsyncClient(base_url=mlflow_server.url) as other:
                resp = await other.post(
                    "/api/2.0/mlflow/registered-models/alias",
                    json={"name": "race", "alias": "champion", "version": "3"},
                )
                resp.raise_for_status()

    monkeypatch.setattr(registry.http, "write", write_then_someone_else_moves_it)
    with pytest.raises(Conflict, match="concurrent change detected") as err:
        await registry.assign("race", "2", "production", actor="carol", expected="1")
    assert err.value.actual == "3"
    versions = {v.version: v for v in await registry.versions("race")}
    assert versions["3"].stages == ("production",)
    assert not any(k.startswith("cd4ml.") for k in versions["2"].tags)  # nothing recorded


async def test_unknown_things_are_not_found(registry: MlflowRegistry) -> None:
    with pytest.raises(NotFound, match="no registered model 'nope'"):
        await registry.versions("nope")
    with pytest.raises(NotFound, match="no version '99'"):
        await registry.assign("fraud", "99", "staging", actor="carol", expected=None)
    with pytest.raises(NotFound, match="no MLflow alias"):
        await registry.assign("fraud", "1", "qa", actor="carol", expected=None)
    assert await registry.stages("fraud") == ()


async def test_a_snapshot_and_its_completed_versions_are_the_per_model_reads(
    make_registry: Callable[..., MlflowRegistry],
) -> None:
    """Against mlflow server: `name IN (...)` over all models, aliases from the model search,
    the runs of the versions shown from runs/search; the same as versions() and stages()."""
    reg = make_registry(page_size=2)
    names = [m.name for m in await reg.models()] + ["nope"]
    snap = await reg.snapshot(names)
    assert isinstance(snap["nope"], NotFound)
    for name in names[:-1]:
        entry = snap[name]
        assert not isinstance(entry, BaseException)
        versions = await reg.versions(name)
        assert entry.stages == await reg.stages(name)
        done = await reg.complete_versions(entry.versions)
        assert [done[(name, v.version)] for v in entry.versions] == list(versions)


async def test_a_wrong_path_prefix_is_a_wrong_url_not_a_missing_model(
    make_registry: Callable[..., MlflowRegistry], mlflow_server: Any
) -> None:
    """The real server answers an unknown path with an HTML 404 (no MLflow error_code)."""
    wrong = make_registry(url=mlflow_server.url + "/mlflow")
    with pytest.raises(InvalidResponse, match="wrong url or path prefix") as err:
        await wrong.versions("churn")
    assert "check the name" not in str(err.value)
    with pytest.raises(InvalidResponse, match="not an MLflow REST API"):
        await wrong.check()
    right = make_registry()
    with pytest.raises(NotFound, match="no registered model 'churn2'"):  # a real missing model
        await right.versions("churn2")


def _cli(tmp_path: Any, url: str, *args: str) -> Any:
    """``cd4ml-console ARGS`` on a workspace whose registry is the MLflow server at ``url``."""
    import os
    import subprocess

    from click.testing import CliRunner

    from console.cli.group import cli

    if not (tmp_path / ".git").exists():
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "cd4ml-console.toml").write_text(
        f'[backends.registry]\ntype = "mlflow"\nurl = "{url}"\nauth = "none"\n'
        'use_keyring = false\nstage_aliases = { production = "champion" }\n'
    )
    env = {"CD4ML_LOG_FILE": os.devnull}
    return CliRunner().invoke(cli, ["-w", str(tmp_path), *args], env=env, catch_exceptions=False)


def test_status_of_an_unknown_model_is_usage_and_errors_go_to_stderr(
    mlflow_server: Any, tmp_path: Any
) -> None:
    missing = _cli(tmp_path, mlflow_server.url, "status", "nosuch")
    assert missing.exit_code == 2 and "no model named 'nosuch'" in missing.stderr
    known = _cli(tmp_path, mlflow_server.url, "status", "churn", "--json")
    assert json.loads(known.stdout)["models"][0]["name"] == "churn"
    down = _cli(tmp_path, mlflow_server.url + "/mlflow", "status")  # a wrong path prefix
    assert down.exit_code == 1
    assert "! registry" in down.stderr and "not an MLflow REST API" in down.stderr
    assert "!" not in down.stdout  # the table on stdout stays clean for pipes
    down_one = _cli(tmp_path, mlflow_server.url + "/mlflow", "status", "churn")
    assert down_one.exit_code == 1 and "no model named" not in down_one.stderr
