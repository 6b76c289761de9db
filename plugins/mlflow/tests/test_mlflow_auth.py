"""Auth and config of the mlflow plugin: credentials, headers, masking, validation."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from cd4ml_console_mlflow import MlflowConfig
from cd4ml_console_mlflow.registry import MlflowRegistry
from mlflow_fakes import MODELS, URL, Recorder, auth_header, make, reply
from pydantic import ValidationError

from console.plugins import BackendContext
from console.ports import NotFound, Unauthorized


async def test_bearer_token_from_the_environment(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-3141")
    reg, rec = make(ctx, reply(200, MODELS), tmp_path, auth="bearer")
    await reg.models()
    assert auth_header(rec) == "Bearer tok-3141"
    assert "tok-3141" not in repr(reg.http.__dict__) and "tok-3141" not in repr(rec.requests[-1])
    line = await reg.check()
    assert (
        "bearer auth, credential 'mlflow' from environment variable MLFLOW_TRACKING_TOKEN" in line
    )
    assert "tok-3141" not in line


async def test_basic_auth_from_a_0600_credentials_file(ctx: BackendContext, tmp_path: Path) -> None:
    creds = tmp_path / "credentials.toml"
    creds.write_text('[mlflow]\nusername = "alice"\npassword = "pw-2718"\n')
    creds.chmod(0o600)
    rec = Recorder(reply(200, MODELS))
    config = MlflowConfig(url=URL, use_keyring=False, credentials_file=creds)  # auth = auto
    reg = MlflowRegistry(config, ctx, transport=httpx.MockTransport(rec))
    await reg.models()
    assert auth_header(rec) == "Basic " + base64.b64encode(b"alice:pw-2718").decode()


async def test_a_readable_credentials_file_is_refused(ctx: BackendContext, tmp_path: Path) -> None:
    creds = tmp_path / "credentials.toml"
    creds.write_text('[mlflow]\ntoken = "tok-1"\n')
    creds.chmod(0o644)
    rec = Recorder(reply(200, MODELS))
    config = MlflowConfig(url=URL, use_keyring=False, credentials_file=creds)
    reg = MlflowRegistry(config, ctx, transport=httpx.MockTransport(rec))
    with pytest.raises(Unauthorized, match=f"chmod 600 {re.escape(str(creds))}"):
        await reg.models()
    assert rec.requests == []


async def test_required_auth_without_a_credential_says_where_it_looked(
    ctx: BackendContext, tmp_path: Path
) -> None:
    reg, rec = make(ctx, reply(200, MODELS), tmp_path, auth="bearer")
    with pytest.raises(Unauthorized) as err:
        await reg.models()
    text = str(err.value)
    assert "MLFLOW_TRACKING_TOKEN: not set" in text and "no-credentials.toml" in text
    assert "cd4ml-console login mlflow" in text
    assert rec.requests == []


async def test_a_401_without_any_credential_points_at_login(
    ctx: BackendContext, tmp_path: Path
) -> None:
    reg, rec = make(ctx, reply(401, {"error_code": "UNAUTHENTICATED"}), tmp_path, auth="auto")
    with pytest.raises(Unauthorized, match=r"no credential found .*cd4ml-console login mlflow"):
        await reg.models()
    assert auth_header(rec) is None


# -- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://bob:pw@mlflow:5000"}, "do not put credentials in the URL"),
        ({"url": "mlflow:5000"}, "not an http(s) URL"),
        ({"url": URL, "stage_aliases": {"production": "latest"}}, "reserved"),
        ({"url": URL, "stage_aliases": {"production": "v2"}}, "reserved"),
        ({"url": URL, "stage_aliases": {"production": "champ ion"}}, "may only contain"),
        ({"url": URL, "stage_aliases": {"staging": "a", "production": "a"}}, "both map to"),
        ({"url": URL, "page_size": 5000}, "less than or equal to 1000"),
        ({"url": URL, "tokn_env": "X"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_is_refused_naming_the_problem(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        MlflowConfig(**options)


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"prod": "champion"}, r"stage_aliases names stage.*prod"),
        (
            {"production": "staging"},
            r"stages staging and production would share the MLflow alias 'staging'",
        ),
    ],
)
def test_stage_aliases_must_fit_the_configured_stages(
    ctx: BackendContext, aliases: dict[str, str], message: str
) -> None:
    with pytest.raises(NotFound, match=message):
        MlflowRegistry(MlflowConfig(url=URL, stage_aliases=aliases), ctx)


def test_a_stage_name_mlflow_refuses_as_alias_needs_a_mapping(tmp_path: Path) -> None:
    from console.config import ConsoleConfig

    config = ConsoleConfig(stages=["v1", "production"])
    ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=config)
    with pytest.raises(NotFound, match=r"stage 'v1' can not be an MLflow alias"):
        MlflowRegistry(MlflowConfig(url=URL), ctx)
    MlflowRegistry(MlflowConfig(url=URL, stage_aliases={"v1": "first"}), ctx)


def test_a_missing_ca_bundle_is_a_clear_error(ctx: BackendContext, tmp_path: Path) -> None:
    config = MlflowConfig(url=URL, verify_tls=str(tmp_path / "ca.pem"))
    with pytest.raises(NotFound, match=r"verify_tls = .*ca\.pem.*can not load the CA bundle"):
        MlflowRegistry(config, ctx)


def test_the_plugin_is_found_through_its_entry_point() -> None:
    from console.plugins import discover

    plugin = discover().get("mlflow")
    assert plugin is not None and plugin.kinds == frozenset({"registry"})
    assert plugin.distribution.startswith("cd4ml-console-mlflow")


async def test_no_frame_of_the_plugin_holds_the_token_as_a_plain_str(
    ctx: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual's crash output prints locals: trace every line of the plugin and credentials."""
    import sys
    import threading
    from types import FrameType

    import cd4ml_console_mlflow

    from console.plugins import credentials

    token = "tok-very-secret-42"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    ours = {
        credentials.__file__,
        *map(str, Path(cd4ml_console_mlflow.__file__).parent.glob("*.py")),
    }
    leaks: list[str] = []
    seen: set[str] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in ours:
            return None
        seen.add(frame.f_code.co_name)
        for name, value in frame.f_locals.items():
            if isinstance(value, str) and token in value:
                leaks.append(f"{frame.f_code.co_name}:{frame.f_lineno}:{name}")
        return tracer

    reg, rec = make(ctx, reply(200, MODELS), tmp_path, auth="bearer")
    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        await reg.models()
        await reg.check()
    finally:
        sys.settrace(None)
        threading.settrace(None)
    assert auth_header(rec) == f"Bearer {token}"
    assert {"_from_env", "auth_flow", "_send"} <= seen  # the tracer did see the hot paths
    assert leaks == []
