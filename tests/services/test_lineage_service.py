"""services.lineage: the pure four-axis diffs, and the service over fake ports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from console.config import MetricSpec
from console.domain import Commit, DataOutput, DataSchema, DataVersion, SchemaField
from console.ports import Unreachable
from console.services.lineage import (
    ChangeKind,
    LineageService,
    authors_of,
    diff_data,
    diff_params,
    diff_schema,
    metric_deltas,
)
from console.services.overview import OverviewService


def fakes() -> Any:
    """tests/tui/fakes.py, loaded once under a name no other folder uses."""
    if "tui_fakes" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tui" / "fakes.py"
        spec = importlib.util.spec_from_file_location("tui_fakes", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["tui_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["tui_fakes"]


@pytest.mark.parametrize(
    ("base", "head", "expected"),
    [
        ({}, {}, []),
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [("a", ChangeKind.CHANGED, 1, 2)]),
        ({}, {"b": 0.2}, [("b", ChangeKind.ADDED, None, 0.2)]),
        ({"c": "x"}, {}, [("c", ChangeKind.REMOVED, "x", None)]),
        ({"a": 1, "z": 1}, {"z": 2, "a": 1, "b": None}, [
            ("b", ChangeKind.ADDED, None, None), ("z", ChangeKind.CHANGED, 1, 2)]),
    ],
)  # fmt: skip
def test_diff_params(base, head, expected):
    got = [(p.key, p.kind, p.before, p.after) for p in diff_params(base, head)]
    assert got == expected


def _schema(*fields: tuple[str, str, bool | None]) -> DataSchema:
    return DataSchema(
        commit="c",
        path="schema.json",
        fields=tuple(SchemaField(name=n, type=t, nullable=nl) for n, t, nl in fields),
    )


def test_diff_schema_added_removed_changed():
    base = _schema(("id", "string", False), ("x", "float", False), ("old", "int", True))
    head = _schema(("id", "string", False), ("x", "double", False), ("new", "int", True))
    axis = diff_schema(base, head)
    assert axis.declared and axis.changed and axis.fields == 3
    assert [(c.name, c.kind) for c in axis.changes] == [
        ("new", ChangeKind.ADDED),
        ("old", ChangeKind.REMOVED),
        ("x", ChangeKind.CHANGED),
    ]
    assert diff_schema(None, None).declared is False
    nullable = diff_schema(_schema(("a", "int", False)), _schema(("a", "int", True)))
    assert nullable.changes[0].kind is ChangeKind.CHANGED


def test_diff_data_sizes_rows_and_outputs():
    base = DataVersion(
        commit="a",
        outputs=(DataOutput(path="train", md5="1" * 32, size=100), DataOutput(path="hold", md5="2" * 32, size=10)),
        rows=1000,
    )  # fmt: skip
    head = DataVersion(
        commit="b",
        outputs=(DataOutput(path="train", md5="3" * 32, size=150), DataOutput(path="hold", md5="2" * 32, size=10)),
        rows=1200,
    )  # fmt: skip
    axis = diff_data(base, head)
    assert axis.changed
    assert axis.size_delta == 50 and axis.rows_delta == 200
    kinds = {o.path: o.kind for o in axis.outputs}
    assert kinds == {"train": ChangeKind.CHANGED, "hold": ChangeKind.SAME}
    assert not diff_data(base, base).changed


def test_metric_deltas_follow_direction():
    specs = {"mape": MetricSpec(direction="lower")}
    deltas = metric_deltas(
        {"auc": 0.9, "mape": 0.10}, {"auc": 0.8, "mape": 0.12}, lambda k: specs.get(k, MetricSpec())
    )
    by = {d.name: d for d in deltas}
    assert by["auc"].better is True and by["mape"].better is True
    assert by["auc"].delta == pytest.approx(0.1)
    assert metric_deltas({"a": 1.0}, {}, lambda k: MetricSpec())[0].better is None


def test_authors_most_commits_first():
    commits = [Commit(sha=f"{i:040d}", author=a) for i, a in enumerate(["bo", "al", "bo", "cy"])]
    assert authors_of(commits) == ("bo", "al", "cy")


async def test_lineage_of_a_candidate_against_production():
    f = fakes()
    ws, _ = f.make_workspace()
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("churn-predictor", with_details=False, with_health=False)
    versions = {v.version: v for v in view.versions}
    lineage = await LineageService(overview).lineage(
        "churn-predictor", versions["v1.14.0"], versions["v1.10.0"]
    )
    assert lineage.base_version == "v1.10.0"
    assert lineage.code is not None and len(lineage.code.commits) == 12
    assert lineage.code.diffstat is not None and lineage.code.diffstat.files > 0
    assert {p.key for p in lineage.model_axis.params} >= {"train.dropout"}
    assert [m.name for m in lineage.model_axis.metrics][:2] == ["auc", "f1"]  # key metrics first
    assert lineage.schema_axis is not None and lineage.schema_axis.changed
    assert lineage.sampling is not None and lineage.sampling.changed
    assert all(s.ok for s in lineage.sections.values())


async def test_lineage_keeps_working_when_code_fails():
    f = fakes()
    ws, world = f.make_workspace()
    world.faults.fail("code", Unreachable("git repo /x missing", backend="git"))
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("churn-predictor", with_details=False, with_health=False)
    versions = {v.version: v for v in view.versions}
    lineage = await LineageService(overview).lineage(
        "churn-predictor", versions["v1.14.0"], versions["v1.10.0"]
    )
    assert lineage.sections["code"].error.startswith("git: git repo /x missing")
    assert lineage.code is not None and lineage.code.commits == ()
    assert lineage.model_axis.params  # data still answered


async def test_lineage_without_a_base():
    f = fakes()
    ws, _ = f.make_workspace()
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("demand-forecast", with_details=False, with_health=False)
    lineage = await LineageService(overview).lineage("demand-forecast", view.versions[-1], None)
    assert lineage.base_version is None
    assert lineage.model_axis.params == ()
    assert lineage.code is not None and lineage.code.diffstat is None


async def test_ci_detail_reads_only_the_ci_port():
    f = fakes()
    ws, world = f.make_workspace()
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("fraud-detector", with_details=False, with_health=False)
    before = dict(world.faults.calls)
    detail = await LineageService(overview).ci_detail("fraud-detector", view.versions[-1])
    assert detail.ci_state == "failure"
    assert detail.sections["ci"].ok
    assert world.faults.calls["ci.runs_for"] == before.get("ci.runs_for", 0) + 1
    assert world.faults.calls["data.metrics"] == before.get("data.metrics", 0)


async def test_details_without_params_read_no_parameters_file():
    """`status` and `versions` show no parameters: their details skip the params reads."""
    f = fakes()
    ws, world = f.make_workspace()
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("fraud-detector", with_details=False, with_health=False)
    versions = list(view.versions[-3:])
    lean = await overview.version_details("fraud-detector", versions, with_params=False)
    assert world.faults.calls["data.params"] == 0
    assert all(d.metrics and d.commit is not None for d in lean.values())
    full = await overview.version_details("fraud-detector", versions)
    assert world.faults.calls["data.params"] == 3
    assert {v: d.metrics for v, d in lean.items()} == {v: d.metrics for v, d in full.items()}


async def test_lineage_of_a_candidate_behind_production():
    """The candidate's commit is an ancestor of production's: not "same commit as the base",
    but how far behind it is, and production's changes it lacks."""
    from console.tui.palette import Palette
    from console.tui.widgets.lineage import render_lineage

    f = fakes()
    ws, _ = f.make_workspace()
    overview = OverviewService(ws, clock=lambda: f.NOW)
    view = await overview.model_view("churn-predictor", with_details=False, with_health=False)
    versions = {v.version: v for v in view.versions}
    lineage = await LineageService(overview).lineage(
        "churn-predictor", versions["v1.8.0"], versions["v1.10.0"]
    )
    code = lineage.code
    assert code is not None and code.commits == ()
    assert len(code.behind) == 6 and code.behind[0].sha == versions["v1.10.0"].commit
    assert code.diffstat is not None and code.diffstat.files > 0
    pal = Palette.from_variables({})
    text = render_plain(render_lineage(lineage, pal, f.NOW, ws.config.metric_spec))
    assert "6 commits behind production · it lacks 8 files +87 \u221222" in text
    assert "same commit" not in text


def render_plain(renderable: Any) -> str:
    from rich.console import Console

    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()
