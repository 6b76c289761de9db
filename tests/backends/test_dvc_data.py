"""DvcData reads DVC files, params, metrics, stats and schema at a commit from git."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _fixtures_data import DVC_DIR, DVC_FILE, DVC_LOCK, GitRepo, context

from console.backends.dvc_data import DvcData, flatten, numeric_only, parse_schema
from console.domain import DataOutput, SchemaField
from console.plugins.options import DvcConfig
from console.ports import DataVersions, InvalidResponse, NotFound, Unreachable


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "ws")


async def make(repo: GitRepo, **config: Any) -> DvcData:
    return DvcData(DvcConfig(), context(repo.path, **config))


@pytest.fixture
async def dvc(repo: GitRepo) -> AsyncIterator[DvcData]:
    backend = await make(repo)
    yield backend
    await backend.aclose()


async def test_implements_the_port(dvc: DvcData) -> None:
    assert isinstance(dvc, DataVersions)
    assert dvc.name == "dvc"


async def test_reads_files_at_each_commit_without_checkout(repo: GitRepo, dvc: DvcData) -> None:
    first = repo.commit(
        {
            "models/churn/params.yaml": "train:\n  lr: 0.1\n  layers: [8, 4]\nseed: 7\n",
            "models/churn/metrics.json": json.dumps(
                {"auc": 0.91, "test": {"acc": 0.88, "ok": True, "n": 3}, "name": "x", "bad": "NaN"}
            ),
            "data/churn.dvc": DVC_FILE,
            "data/churn/stats.json": '{"rows": 1200, "cols": 3}',
        }
    )
    second = repo.commit(
        {
            "models/churn/params.yaml": "train:\n  lr: 0.05\n",
            "models/churn/metrics.json": '{"auc": 0.93, "nan": NaN}',
        }
    )
    assert await dvc.params("churn", first) == {"train.lr": 0.1, "train.layers": [8, 4], "seed": 7}
    assert await dvc.params("churn", second) == {"train.lr": 0.05}
    assert await dvc.metrics("churn", first) == {"auc": 0.91, "test.acc": 0.88, "test.n": 3.0}
    assert await dvc.metrics("churn", second) == {"auc": 0.93}
    data = await dvc.data_version("churn", first[:10])
    assert data.commit == first
    assert data.outputs == (
        DataOutput(path="data/churn.csv", md5="44aaa76ca9ab5235227b582bd4daf446", size=23),
    )
    assert data.rows == 1200
    assert (await dvc.data_version("churn", second)).digest == data.digest


async def test_absent_files_are_empty_not_errors(repo: GitRepo, dvc: DvcData) -> None:
    sha = repo.commit({"README.md": "hi\n"})
    data = await dvc.data_version("churn", sha)
    assert data.outputs == () and data.rows is None and data.digest == ""
    assert await dvc.params("churn", sha) == {}
    assert await dvc.metrics("churn", sha) == {}
    assert await dvc.schema("churn", sha) is None


async def test_directory_out_and_dvc_lock_stages_of_the_model(repo: GitRepo, dvc: DvcData) -> None:
    sha = repo.commit({"data/images.dvc": DVC_DIR, "dvc.lock": DVC_LOCK})
    churn = await dvc.data_version("churn", sha)  # no data/churn.dvc: the lock's churn stage
    assert [o.path for o in churn.outputs] == ["metrics.json", "model.pkl"]
    fraud = await dvc.data_version("fraud", sha)
    assert fraud.outputs == (
        DataOutput(path="feats", md5="02dc0402141edb6fd22e60390d331815.dir", size=3, nfiles=2),
    )
    other = await dvc.data_version("other", sha)  # no stage names it: all outs
    assert len(other.outputs) == 3
    images = await make(repo, models={"images": {"data": ["data/images.dvc", "gone.dvc"]}})
    try:
        out = (await images.data_version("images", sha)).outputs
        assert out == (
            DataOutput(
                path="data/images", md5="b9a53d961b6b47a74b39cd21b39dd6ca.dir", size=9, nfiles=2
            ),
        )
    finally:
        await images.aclose()


async def test_dir_template_from_artifacts_yaml_and_overrides(repo: GitRepo) -> None:
    sha = repo.commit(
        {
            "artifacts.yaml": "churn:\n  type: model\n  path: projects/churn/model.pkl\n",
            "projects/churn/params.yaml": "alpha: 1\n",
            "params.yaml": "alpha: 0\n",
            "custom/fraud.yaml": "beta: {gamma: 2}\n",
            "sub/artifacts.yaml": "nested:\n  path: m/model.pkl\n",
            "sub/m/params.yaml": "depth: 3\n",
        }
    )
    backend = await make(repo, models={"fraud": {"params": "custom/{model}.yaml"}})
    try:
        assert await backend.params("churn", sha) == {"alpha": 1}  # {dir} beats root params.yaml
        assert await backend.params("ghost", sha) == {"alpha": 0}  # empty {dir} is skipped
        assert await backend.params("fraud", sha) == {"beta.gamma": 2}
        assert await backend.params("sub:nested", sha) == {"depth": 3}
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            {"type": "object", "properties": {"age": {"type": "integer"}, "city": {"type": ["string", "null"]}}},
            [SchemaField(name="age", type="integer", nullable=False), SchemaField(name="city", type="string", nullable=True)],
        ),
        (
            {"properties": {"ts": {"anyOf": [{"type": "string"}, {"type": "null"}], "format": "date-time"}}},
            [SchemaField(name="ts", type="string:date-time", nullable=True)],
        ),
        (
            {"fields": [{"name": "id", "type": "int64", "nullable": False}, {"name": "x", "type": "number", "constraints": {"required": True}}]},
            [SchemaField(name="id", type="int64", nullable=False), SchemaField(name="x", type="number", nullable=False)],
        ),
        (
            {"columns": {"a": "float", "b": {"dtype": "str", "nullable": True}}},
            [SchemaField(name="a", type="float"), SchemaField(name="b", type="str", nullable=True)],
        ),
        (
            {"columns": [{"name": "a", "type": "bool"}]},
            [SchemaField(name="a", type="bool", nullable=False)],
        ),
    ],
)  # fmt: skip
def test_schema_forms(text: dict[str, Any], expected: list[SchemaField]) -> None:
    assert list(parse_schema(text, "c0ffee", "schema.json").fields) == expected


async def test_schema_file_at_commit(repo: GitRepo, dvc: DvcData) -> None:
    sha = repo.commit({"data/churn/schema.json": '{"fields": [{"name": "id", "type": "integer"}]}'})
    schema = await dvc.schema("churn", sha)
    assert schema is not None
    assert schema.path == "data/churn/schema.json" and schema.commit == sha
    assert schema.fields == (SchemaField(name="id", type="integer", nullable=False),)


@pytest.mark.parametrize(
    ("files", "call", "words"),
    [
        ({"params.yaml": "a: [1, 2\n"}, "params", ["params.yaml", "not valid YAML", "line"]),
        ({"params.yaml": "- 1\n- 2\n"}, "params", ["params.yaml", "mapping", "list"]),
        ({"metrics.json": "{oops}"}, "metrics", ["metrics.json", "not valid JSON", "line 1"]),
        ({"data/churn.dvc": "outs: {a: 1}\n"}, "data_version", ["data/churn.dvc", "not a list"]),
        ({"data/churn.dvc": "outs:\n- md5: x\n"}, "data_version", ["without a `path`"]),
        ({"data/schema.json": '{"nothing": 1}'}, "schema", ["data/schema.json", "properties"]),
        ({"data/schema.json": b"\xff\xfe".decode("latin-1")}, "schema", ["not valid JSON"]),
    ],
)
async def test_malformed_files_name_commit_and_path(
    repo: GitRepo, dvc: DvcData, files: dict[str, str], call: str, words: list[str]
) -> None:
    sha = repo.commit(files)
    with pytest.raises(InvalidResponse) as err:
        await getattr(dvc, call)("churn", sha)
    text = str(err.value)
    assert sha[:10] in text
    for word in words:
        assert word in text


async def test_unknown_commit_is_not_found(repo: GitRepo, dvc: DvcData) -> None:
    repo.commit({"params.yaml": "a: 1\n"})
    for rev in ["0" * 40, "deadbeef", "--all"]:
        with pytest.raises(NotFound):
            await dvc.params("churn", rev)


async def test_results_are_cached_per_commit(repo: GitRepo, dvc: DvcData) -> None:
    sha = repo.commit({"params.yaml": "a: 1\n"})
    assert await dvc.params("churn", sha) == {"a": 1}
    reads = 0
    original = dvc._cat.read

    async def counting(rev: str, path: str) -> bytes | None:
        nonlocal reads
        reads += 1
        return await original(rev, path)

    dvc._cat.read = counting  # type: ignore[method-assign]
    again = await dvc.params("churn", sha)
    again["mutated"] = True
    assert await dvc.params("churn", sha) == {"a": 1}
    assert reads == 0


async def test_check_counts_models_at_head(repo: GitRepo) -> None:
    repo.commit(
        {
            "artifacts.yaml": "churn: {path: models/churn/model.pkl}\nfraud: {path: m.pkl}\n",
            "models/churn/params.yaml": "a: 1\n",
        }
    )
    backend = await make(repo)
    try:
        assert "1 of 2 models" in await backend.check()
    finally:
        await backend.aclose()


async def test_check_on_an_empty_repo_and_outside_git(tmp_path: Path, repo: GitRepo) -> None:
    empty = await make(repo)
    with pytest.raises(Unreachable, match="no commits"):
        await empty.check()
    await empty.aclose()
    (tmp_path / "plain").mkdir()
    nogit = DvcData(DvcConfig(), context(tmp_path / "plain"))
    with pytest.raises(Unreachable):
        await nogit.check()
    await nogit.aclose()


def test_flatten_and_numeric_only() -> None:
    flat = flatten({"a": {"b": {"c": 1}}, "d": [1, {"e": 2}], "f": {}})
    assert flat == {"a.b.c": 1, "d": [1, {"e": 2}], "f": {}}
    assert numeric_only({"a": 1, "b": True, "c": "1", "d": float("inf"), "e": 2.5}) == {
        "a": 1.0,
        "e": 2.5,
    }


def recording(backend: DvcData) -> list[str]:
    """Every object the backend's cat-file is asked for, in order."""
    asked: list[str] = []
    many = backend._cat.many

    async def wrapped(specs: Any) -> Any:
        asked.extend(specs)
        return await many(specs)

    backend._cat.many = wrapped  # type: ignore[method-assign]
    return asked


async def test_many_items_read_together_say_what_each_read_says(repo: GitRepo) -> None:
    """20 models at 2 commits: the batch answers as the per-item reads do, a broken file
    fails only its own item, and each blob is read once however many commits share it."""
    names = [f"m{i:02d}" for i in range(20)]
    first = repo.commit(
        {f"models/{m}/metrics.json": json.dumps({"auc": i / 100}) for i, m in enumerate(names)}
        | {f"data/{m}.dvc": DVC_FILE for m in names}
    )
    second = repo.commit({"models/m03/metrics.json": "{oops}", "models/m04/metrics.json": None})
    items = [(m, c) for m in names for c in (first, second)]
    batch = await make(repo)
    asked = recording(batch)
    try:
        metrics = await batch.metrics_many(items)
        data = await batch.data_versions_many(items)
    finally:
        await batch.aclose()
    bad = metrics[("m03", second)]
    assert isinstance(bad, InvalidResponse) and "models/m03/metrics.json" in str(bad)
    assert metrics[("m04", second)] == {}
    assert asked.count(asked[-1]) == 1 and len(asked) == len(set(asked))
    one = await make(repo)
    try:
        for item in items:
            if item == ("m03", second):
                continue
            assert metrics[item] == await one.metrics(*item), item
            assert data[item] == await one.data_version(*item), item
    finally:
        await one.aclose()
    by_id = [s for s in asked if ":" not in s and "^" not in s]
    assert len(by_id) == 6  # 2 root trees, 2 models/ and 1 data/ tree, the one .dvc blob


async def test_artifacts_yaml_is_read_once_and_only_when_a_dir_template_is_reached(
    repo: GitRepo,
) -> None:
    names = [f"m{i:02d}" for i in range(20)]
    index = "".join(f"{m}:\n  path: projects/{m}/model.pkl\n" for m in names)
    first = repo.commit(
        {"artifacts.yaml": index}
        | {f"projects/{m}/params.yaml": f"alpha: {i}\n" for i, m in enumerate(names)}
        | {f"models/{m}/metrics.json": '{"auc": 1}' for m in names}
    )
    second = repo.commit({"projects/m00/params.yaml": "alpha: 100\n"})
    backend = await make(repo)
    asked = recording(backend)
    try:
        metrics = await backend.metrics_many([(m, first) for m in names])
        assert all(v == {"auc": 1.0} for v in metrics.values())
        assert not any("artifacts.yaml" in s for s in asked)  # models/{model}/ came first
        params = await backend.params_many([(m, c) for m in names for c in (first, second)])
        assert params[("m00", second)] == {"alpha": 100} and params[("m05", first)] == {"alpha": 5}
        index_blob = repo.git("rev-parse", f"{first}:artifacts.yaml")
        assert asked.count(index_blob) == 1  # one read for 40 (model, commit) pairs
    finally:
        await backend.aclose()
