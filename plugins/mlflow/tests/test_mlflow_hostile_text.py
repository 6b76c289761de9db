"""MLflow fields are untrusted text: every control character (C0, DEL, C1) and direction
override, written into a real ``mlflow server`` through its REST API (a model's description and
tags, a run's user and parameters, a version's source, description and the stage tags the
console reads), never comes out of the registry port. docs/reliability.md, "Hostile text"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cd4ml_console_mlflow import MlflowConfig
from cd4ml_console_mlflow.registry import MlflowRegistry

from console.plugins import BackendContext

pytestmark = pytest.mark.xdist_group("mlflow-server")  # one server per session: keep together

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROLS = (*(chr(c) for c in range(0x20)), "\x7f", *(chr(c) for c in range(0x80, 0xA0)), *BIDI)
MODEL = "hostile-text"
AT = "2025-11-13T10:00:00+00:00"


def _bad(text: str, multiline: bool) -> list[str]:
    wanted = set(CONTROLS) - ({"\n"} if multiline else set())
    return [f"U+{ord(c):04X}" for c in text if c in wanted]


def _leaks(value: Any, where: str = "") -> list[str]:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, str):
        found = _bad(value, multiline=where.endswith(".message"))
        return [f"{where}: {found}"] if found else []
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaks(str(k), f"{where}.<key>") + _leaks(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out += _leaks(v, f"{where}[{i}]")
    return out


async def _seed(http: httpx.AsyncClient) -> tuple[list[str], str]:
    """One version of MODEL per character, the character in every text field MLflow keeps
    for it; returns the characters MLflow itself refused (it refuses NUL in a version) and
    the experiment's id."""
    refused: list[str] = []

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await http.post(path, json=body)
        resp.raise_for_status()
        doc: dict[str, Any] = resp.json()
        return doc

    await post("registered-models/create", {
        "name": MODEL, "description": "".join(CONTROLS),
        "tags": [{"key": f"t{i}", "value": f"v{c}x"} for i, c in enumerate(CONTROLS)],
    })  # fmt: skip
    exp = (await post("experiments/create", {"name": MODEL}))["experiment_id"]
    for i, c in enumerate(CONTROLS):
        try:
            run = await post("runs/create", {
                "experiment_id": exp, "user_id": f"u{c}x",
                "tags": [{"key": "mlflow.user", "value": f"u{c}x"},
                         {"key": "mlflow.source.git.commit", "value": f"{i:040x}"}],
            })  # fmt: skip
            rid = run["run"]["info"]["run_id"]
            await post("runs/log-batch", {"run_id": rid,
                       "params": [{"key": "lr", "value": f"0.1{c}x"}]})  # fmt: skip
            tags = {"cd4ml.stage.production.assigned_at": AT,
                    "cd4ml.stage.production.assigned_by": f"a{c}x",
                    "cd4ml.stage.production.message": f"m{c}x\nline 2", "note": f"n{c}x"}  # fmt: skip
            await post("model-versions/create", {
                "name": MODEL, "source": f"s3://bucket/{c}x", "run_id": rid,
                "description": f"d{c}x", "tags": [{"key": k, "value": v}
                                                 for k, v in tags.items()],
            })  # fmt: skip
        except httpx.HTTPStatusError:
            refused.append(f"U+{ord(c):04X}")
    await post("registered-models/alias", {"name": MODEL, "alias": "champion", "version": "1"})
    return refused, exp


@pytest.fixture
async def seeded(mlflow_server: Any) -> AsyncIterator[list[str]]:
    """MODEL on the session's server for this test only: the other tests count its models."""
    async with httpx.AsyncClient(
        base_url=f"{mlflow_server.url}/api/2.0/mlflow/", timeout=30
    ) as http:
        refused, exp = await _seed(http)
        try:
            yield refused
        finally:
            await http.request("DELETE", "registered-models/delete", json={"name": MODEL})
            await http.post("experiments/delete", json={"experiment_id": exp})


@pytest.fixture
async def registry(mlflow_server: Any, ctx: BackendContext) -> AsyncIterator[MlflowRegistry]:
    reg = MlflowRegistry(MlflowConfig(url=mlflow_server.url, auth="none", use_keyring=False,
                                      stage_aliases={"production": "champion"}), ctx)  # fmt: skip
    yield reg
    await reg.aclose()


async def test_no_control_character_from_any_mlflow_field_comes_out_of_the_port(
    seeded: list[str], registry: MlflowRegistry
) -> None:
    refused = seeded
    assert set(refused) <= {"U+0000"}, f"MLflow refused {refused}: they would not be covered"
    models = [m for m in await registry.models() if m.name == MODEL]
    versions = await registry.versions(MODEL)
    stages = await registry.stages(MODEL)
    history = await registry.history(MODEL)
    assert len(models) == 1 and len(versions) >= len(CONTROLS) - 1  # MLflow refuses NUL
    assert any(e.message for e in history)  # the stage messages were read
    assert {p for v in versions for p in v.params} == {"lr"}  # the parameters were read
    found = _leaks({"models": models, "versions": versions, "stages": stages, "history": history})
    assert not found, f"{len(found)} leaks, e.g. {found[:8]}"
