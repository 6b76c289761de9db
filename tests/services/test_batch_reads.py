"""Reads in batches: status and the overview ask each port once for many models, give the same
answers as the per-item reads, and keep per-item failures per item.

Counts, never wall time: how many calls each port got, how many ``git cat-file`` rounds.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import workspaces as wsmod
from bench.reference_status import facts
from bench.reference_status import status as reference_status
from console.cli.status import collect_status
from console.config import ConsoleConfig, load_config
from console.domain import Commit, Model, ModelVersion, RegistryEntry, StageAssignment
from console.ports import NotFound
from console.services import overview as overview_mod
from console.services.overview import OverviewService
from console.services.workspace import Workspace, open_workspace

AT = datetime.now(UTC)

SPEC = wsmod.Spec("t-batch", models=40, versions=5)
BATCH = {
    "snapshot", "complete_versions", "commits_many", "data_versions_many", "metrics_many",
    "params_many", "runs_for_many",
}  # fmt: skip


class PerItem:
    """A backend with its batch methods hidden: a plugin written against the per-item ports."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in BATCH:
            raise AttributeError(name)
        return getattr(self._inner, name)


class Counting:
    """A backend that counts the calls of each of its methods."""

    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if not callable(found) or name.startswith("_"):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._calls[f"{self._inner.name}.{name}"] += 1
            return found(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def bench_ws(tmp_path_factory: pytest.TempPathFactory) -> wsmod.Built:
    return wsmod.build(SPEC, tmp_path_factory.mktemp("batch") / SPEC.key)


def without(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "generated_at"}


async def status_of(path: Path, wrap: Any = None) -> dict[str, Any]:
    ws = open_workspace(load_config(None, path))
    if wrap is not None:
        ws.backends = {kind: wrap(b) for kind, b in ws.backends.items()}
    async with ws:
        return await collect_status(ws, clock=lambda: AT)  # both reads' verdicts at one time


async def test_status_in_batches_says_what_the_per_item_reads_say(bench_ws: wsmod.Built) -> None:
    """The same JSON, byte for byte, as plugins without batch methods give (the old path),
    and the same facts as the bench's single-pass reference reader."""
    batched = await status_of(bench_ws.path)
    per_item = await status_of(bench_ws.path, PerItem)
    assert json.dumps(without(batched), indent=2) == json.dumps(without(per_item), indent=2)
    assert batched["errors"] == [] and len(batched["models"]) == SPEC.models
    reference = await asyncio.to_thread(reference_status, bench_ws.path)
    assert facts(json.loads(json.dumps(batched))) == facts(reference)


async def test_each_port_is_asked_once_for_all_models(bench_ws: wsmod.Built) -> None:
    calls: Counter[str] = Counter()
    doc = await status_of(bench_ws.path, lambda b: Counting(b, calls))
    assert len(doc["models"]) == SPEC.models
    many = {name: n for name, n in calls.items() if name.split(".")[1] in BATCH}
    assert many == {
        "gto.snapshot": 1,
        "git.commits_many": 1,
        "dvc.data_versions_many": 1,
        "dvc.metrics_many": 1,
        "runs-folder.runs_for_many": 1,
    }
    per_item = {"versions", "stages", "commit", "data_version", "metrics", "params", "runs_for"}
    assert [n for n in calls if n.split(".")[1] in per_item] == []


async def test_git_reads_take_a_few_rounds_not_one_per_file(bench_ws: wsmod.Built) -> None:
    """40 models x 2 stages x 3 files: the data backend's cat-file gets a handful of batches
    (commits, root trees, shared trees, the rest of the paths, blobs), each written at once,
    and reads the shared ``data/`` tree once."""
    ws = open_workspace(load_config(None, bench_ws.path))
    data = ws.get("data")
    batches: list[list[str]] = []
    many = data._cat.many

    async def recording(specs: Sequence[str]) -> Any:
        batches.append(list(specs))
        return await many(specs)

    data._cat.many = recording
    async with ws:
        await collect_status(ws)
    assert len(batches) <= 12, [len(b) for b in batches]
    asked = Counter(s for b in batches for s in b)
    assert max(asked.values()) == 1  # nothing asked twice
    assert not any("artifacts.yaml" in s for s in asked)  # {dir} was never needed


# -- with fakes: per-item answers, left-out items, failures, chunks, timeouts -------------------


class Registry:
    name = "fake-registry"

    def __init__(self, n: int) -> None:
        self.names = [f"m{i:02d}" for i in range(n)]
        self.calls: Counter[str] = Counter()

    async def models(self) -> list[Model]:
        return [Model(name=n) for n in self.names]

    def _entry(self, name: str) -> RegistryEntry:
        versions = tuple(
            ModelVersion(model=name, version=f"v1.{i}.0", commit=f"{name}{i}".ljust(40, "0"))
            for i in range(3)
        )
        stages = (StageAssignment(model=name, stage="production", version="v1.1.0"),)
        return RegistryEntry(versions=versions, stages=stages)

    async def snapshot(self, models: Sequence[str]) -> dict[str, Any]:
        self.calls["snapshot"] += 1
        out: dict[str, Any] = {m: self._entry(m) for m in models}
        if "m03" in out:
            out["m03"] = NotFound("no model m03", backend="fake")
        out.pop("m04", None)  # left out
        return out


class Code:
    name = "fake-code"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []

    async def commit(self, rev: str) -> Commit:
        raise AssertionError("the batch method is used")

    async def commits_many(self, revs: Sequence[str]) -> dict[str, Any]:
        self.batches.append(len(revs))
        await asyncio.sleep(self.delay)
        return {r: Commit(sha=r) for r in revs}


def fake_ws(code: Code, n: int = 12, timeout: float = 5.0) -> Workspace:
    config = ConsoleConfig(timeout_seconds=timeout)
    return Workspace(config=config, backends={"registry": Registry(n), "code": code})


async def test_a_batch_answer_marks_only_the_items_that_failed() -> None:
    service = OverviewService(fake_ws(Code()))
    views = {v.model.name: v for v in await service.overview()}
    assert views["m03"].errors == {"registry": "fake: no model m03"}
    assert views["m04"].errors["registry"] == (
        "registry backend gto left 'm04' out of its batch answer"
    )
    assert views["m04"].sections["registry"].kind == "invalid response"
    others = [v for n, v in views.items() if n not in ("m03", "m04")]
    assert all(v.errors == {} and v.stage_version("production") == "v1.1.0" for v in others)
    assert all(v.details["v1.1.0"].commit is not None for v in others)


async def test_batches_are_cut_at_a_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overview_mod, "BATCH_ITEMS", 5)
    code = Code()
    await OverviewService(fake_ws(code)).overview(candidates_detail=0)
    assert code.batches == [5, 5]  # 10 models' production commits


async def test_one_timeout_per_batch_and_the_last_good_values_stay() -> None:
    code = Code()
    service = OverviewService(fake_ws(code, timeout=0.2))
    first = {v.model.name: v for v in await service.overview(candidates_detail=0)}
    code.delay = 5.0
    again = {v.model.name: v for v in await service.overview(candidates_detail=0)}
    assert len(code.batches) == 2  # one call each time, for every model
    view = again["m00"]
    section = view.sections["code"]
    assert section.error == "code backend git did not answer within 0.2s"
    assert section.fetched_at == first["m00"].sections["code"].fetched_at  # its age
    assert view.details["v1.1.0"].commit == first["m00"].details["v1.1.0"].commit
