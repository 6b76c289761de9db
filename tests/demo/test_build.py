"""The demo builder: determinism, the story's required content, the config, and agreement with
the real tools that read it (the gto CLI, the console's own backends)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.backends.dvc_data import DvcData
from console.backends.gto_registry import GtoRegistry
from console.backends.runs_ci import RunsFolderCI
from console.config import read_config_file
from console.demo.build import MARKER, DemoError, DemoInfo, build_demo
from console.demo.story import MODELS, PEOPLE, expected_stages, pending_requests, seeded_events
from console.plugins import BackendContext, discover
from console.plugins.options import DvcConfig, GtoConfig, RunsFolderConfig
from console.services.workspace import validate_backend_options

NOW = datetime(2025, 3, 14, 15, 0, tzinfo=UTC)
GTO = Path(os.environ.get("CD4ML_GTO", "/work/main/.venv-gto/bin/gto"))


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoInfo:
    return build_demo(tmp_path_factory.mktemp("demo") / "ws", seed=7, now=NOW)


def ctx(info: DemoInfo) -> BackendContext:
    return BackendContext(workspace=info.path, state_dir=info.path / ".cd4ml", config=None)


def tag_commit(repo: Path, tag: str) -> str:
    return git(repo, "rev-parse", f"{tag}^{{commit}}").strip()


def test_same_seed_and_now_give_the_same_history(demo: DemoInfo, tmp_path: Path) -> None:
    again = build_demo(tmp_path / "again", seed=7, now=NOW)
    assert again.head == demo.head
    assert again.tags == demo.tags
    refs = "for-each-ref", "--format=%(refname) %(objectname)"
    assert git(again.path, *refs) == git(demo.path, *refs)
    other = build_demo(tmp_path / "other", seed=8, now=NOW)
    assert other.head != demo.head


def test_rebuild_over_a_previous_demo_wipes_it(tmp_path: Path) -> None:
    first = build_demo(tmp_path / "ws", seed=3, now=NOW)
    (first.path / "scratch.txt").write_text("left over")
    second = build_demo(tmp_path / "ws", seed=3, now=NOW)
    assert second.head == first.head
    assert not (second.path / "scratch.txt").exists()
    assert git(second.path, "status", "--porcelain") == ""


@pytest.mark.parametrize("content", ["file", "dir-with-files"])
def test_refuses_a_folder_that_is_not_a_demo(tmp_path: Path, content: str) -> None:
    target = tmp_path / "mine"
    if content == "file":
        target.write_text("precious")
    else:
        target.mkdir()
        (target / "notes.md").write_text("precious")
    with pytest.raises(DemoError, match=r"demo|file"):
        build_demo(target, now=NOW)
    assert "precious" in (
        target.read_text() if target.is_file() else (target / "notes.md").read_text()
    )


def test_history_has_the_required_shape(demo: DemoInfo) -> None:
    repo = demo.path
    assert demo.models == ("fraud-detector", "churn-predictor", "price-recommender")
    assert int(git(repo, "rev-list", "--count", "HEAD")) == demo.commits >= 40
    authors = set(git(repo, "log", "--format=%an").split("\n")) - {""}
    assert len(authors) >= 4 and authors <= {p.name for p in PEOPLE.values()}
    dates = [int(x) for x in git(repo, "log", "--format=%at").split()]
    assert max(dates) < NOW.timestamp() and min(dates) < (NOW - timedelta(days=28)).timestamp()
    for name in demo.models:
        for path in (f"models/{name}/params.yaml", f"models/{name}/metrics.json",
                     f"models/{name}/train.py", f"data/{name}.dvc",
                     f"data/{name}/schema.json", f"data/{name}/stats.json"):  # fmt: skip
            assert (repo / path).is_file(), path
    for path in ("dvc.yaml", ".dvc/config", "artifacts.yaml", ".gto", MARKER):
        assert (repo / path).is_file(), path
    assert git(repo, "status", "--porcelain") == ""
    for tag in demo.tags:
        assert git(repo, "cat-file", "-t", f"refs/tags/{tag}").strip() == "tag"


def _show(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


def test_a_schema_change_and_a_resample(demo: DemoInfo) -> None:
    repo = demo.path
    old = json.loads(_show(repo, "fraud-detector@v1.3.0", "data/fraud-detector/schema.json"))
    new = json.loads(_show(repo, "fraud-detector@v2.0.0", "data/fraud-detector/schema.json"))
    assert set(new["properties"]) - set(old["properties"]) == {"device_age_days", "ip_risk_score"}
    assert set(old["properties"]) - set(new["properties"]) == {"merchant_country"}

    before, after = "churn-predictor@v1.0.0", "churn-predictor@v1.1.0"
    s0, s1 = (_show(repo, r, "data/churn-predictor/schema.json") for r in (before, after))
    assert s0 == s1
    d0, d1 = (_show(repo, r, "data/churn-predictor.dvc") for r in (before, after))
    md5 = [line for line in (d0 + d1).splitlines() if "md5:" in line]
    size = [line for line in (d0 + d1).splitlines() if "size:" in line]
    assert len(set(md5)) == 2 and len(set(size)) == 2
    rows = [
        json.loads(_show(repo, r, "data/churn-predictor/stats.json"))["rows"]
        for r in (before, after)
    ]
    assert rows[0] < rows[1]


async def test_the_console_backends_read_the_data(demo: DemoInfo) -> None:
    data = DvcData(DvcConfig(), ctx(demo))
    try:
        sha = tag_commit(demo.path, "fraud-detector@v2.0.0")
        version = await data.data_version("fraud-detector", sha)
        assert version.rows == 265_000 and version.outputs[0].path.endswith("fraud-detector")
        schema = await data.schema("fraud-detector", sha)
        assert schema is not None and "device_age_days" in {f.name for f in schema.fields}
        assert (await data.metrics("fraud-detector", sha))["auc"] == pytest.approx(0.948)
        assert (await data.params("fraud-detector", sha))["train.n_estimators"] == 500
    finally:
        await data.aclose()


def test_config_is_valid_for_the_console(demo: DemoInfo) -> None:
    config = read_config_file(demo.config_path)
    assert config.stages == ["staging", "production"]
    assert set(config.models) == set(demo.models)
    assert config.metric_spec("rmse").direction == "lower"
    assert config.metric_spec("auc").direction == "higher"
    assert config.policy.stages["production"].required_approvals == 1
    assert config.backend("ci") is not None and config.backend("ci").options["path"] == ".ci-runs"  # type: ignore[union-attr]
    options = validate_backend_options(config, discover())
    assert options["metrics"].url == f"http://127.0.0.1:{demo.port}/metrics"
    assert config.root == demo.path


async def test_registry_backend_sees_the_intended_stages(demo: DemoInfo) -> None:
    registry = GtoRegistry(GtoConfig(), ctx(demo))
    try:
        for model, stages in expected_stages().items():
            found = {a.stage: a.version for a in await registry.stages(model)}
            assert found == stages, model
        history = await registry.history("price-recommender")
    finally:
        await registry.aclose()
    prod = [e for e in history if e.stage == "production"]
    assert [e.version for e in prod[-2:]] == ["v1.3.0", "v1.2.1"]  # the rollback
    assert prod[-1].at is not None and NOW - prod[-1].at < timedelta(days=1)
    assert prod[-1].actor.startswith("Erin Novak")


@pytest.mark.skipif(not GTO.exists(), reason=f"gto CLI not found at {GTO} (set CD4ML_GTO)")
def test_gto_cli_agrees(demo: DemoInfo) -> None:
    out = subprocess.run(
        [str(GTO), "show", "--json", "-r", str(demo.path)],
        capture_output=True, text=True, check=True, timeout=60, cwd=demo.path,
    )  # fmt: skip
    shown = json.loads(out.stdout)
    for model in MODELS:
        assert shown[model.name]["stage"] == expected_stages()[model.name]
        assert shown[model.name]["version"] == model.versions[-1].version


def test_candidates_and_waiting_request(demo: DemoInfo) -> None:
    stages = expected_stages()
    # every model has versions newer than production waiting
    for model in MODELS:
        names = [v.version for v in model.versions]
        assert names.index(stages[model.name]["production"]) < len(names) - 1
    (request,) = pending_requests(NOW)
    assert (
        request.requested_by != "dev"
        and request.from_version == stages[request.model]["production"]
    )
    events = seeded_events(NOW)
    assert [e.action for e in events].count("rollback") == 1
    assert all(e.at < NOW for e in events)


async def test_ci_runs_cover_versions_and_the_failed_candidate(demo: DemoInfo) -> None:
    ci = RunsFolderCI(RunsFolderConfig(), ctx(demo))
    try:
        for model in MODELS:
            for version in model.versions:
                runs = await ci.runs_for(tag_commit(demo.path, f"{model.name}@{version.version}"))
                assert runs, f"{model.name} {version.version} has no CI run"
                assert runs[0].succeeded is (version.ci == "success")
        assert not ci.problems
        failed = await ci.runs_for(tag_commit(demo.path, "churn-predictor@v1.3.0"))
    finally:
        await ci.aclose()
    assert len(failed) == 2
    evaluate = next(j for j in failed[0].jobs if j.name == "evaluate")
    assert evaluate.tests_failed == 1 and evaluate.tests_total


async def test_the_seeded_audit_log_never_goes_back_in_time(demo: DemoInfo) -> None:
    from console.services.workspace import open_workspace

    config = read_config_file(demo.config_path)
    config = config.model_copy(
        update={"backends": {k: v for k, v in config.backends.items() if k != "metrics"}}
    )
    async with open_workspace(config) as ws:
        events = list(await ws.backends["audit"].events())
    times = [e.at for e in sorted(events, key=lambda e: e.seq)]
    assert times == sorted(times)  # the waiting request is in its place, not appended last
    assert "request" in [e.action for e in events]


def test_the_metrics_port_is_one_nobody_listens_on(tmp_path: Path) -> None:
    from console.demo.run import metrics_port, port_is_free

    info = build_demo(tmp_path / "ws", seed=7, now=NOW)
    assert metrics_port(info.config_path) == info.port
    assert info.port != 8765  # a fixed port on a shared bastion is another user's server
    assert port_is_free(info.port)
    marker = json.loads((info.path / MARKER).read_text())
    assert marker["root_commit"] == git(info.path, "rev-list", "--max-parents=0", "HEAD").strip()
