"""compare: candidates against the stage's version, direction-aware, four axes, trend."""

from __future__ import annotations

import json

import pytest

from console.services.release import Refused
from console.services.release.compare import compare, comparison_doc
from tests.release.fakes import World, commit_of


async def test_candidates_against_production() -> None:
    w = World()
    w.data.schemas = {commit_of("v1.0.0"): ["a", "b"], commit_of("v1.3.0"): ["a", "c"]}
    c = await compare(w.ws, "m", ["v1.1.0", "v1.3.0"])
    assert c.base_version == "v1.0.0" and c.stage == "production"
    first, second = c.candidates
    auc = {m.name: m for m in first.metrics}["auc"]
    lat = {m.name: m for m in second.metrics}["latency"]
    assert auc.delta == pytest.approx(0.02) and auc.better is True
    assert lat.delta == pytest.approx(-1) and lat.better is True  # lower is better
    assert {m.name: m for m in second.metrics}["auc"].better is False
    assert first.ci == "success"
    assert second.lineage.schema_axis is not None
    assert [(f.name, f.kind.value) for f in second.lineage.schema_axis.changes] == [
        ("b", "removed"), ("c", "added")
    ]  # fmt: skip
    assert second.lineage.code is not None and second.lineage.code.diffstat is not None
    assert [t.version for t in c.trend] == ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"]
    assert c.trend[2].metrics["auc"] == 0.93
    doc = json.loads(json.dumps(comparison_doc(c)))
    assert doc["candidates"][1]["schema"]["changes"][0]["name"] == "b"
    assert doc["candidates"][0]["metrics"][0]["better"] is True


async def test_compare_against_another_stage_and_unknown_versions() -> None:
    w = World()
    c = await compare(w.ws, "m", ["v1.2.0"], stage="staging")
    assert c.base_version == "v1.1.0" and c.candidates[0].ci == "failure"
    with pytest.raises(Refused) as err:
        await compare(w.ws, "m", ["v9.9.9"])
    assert err.value.kind == "not_found" and "v9.9.9" in err.value.message
    with pytest.raises(Refused):
        await compare(w.ws, "m", ["v1.1.0"], stage="qa")
