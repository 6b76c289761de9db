"""A fake MLflow for the plugin's server-less tests: an httpx.MockTransport that records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cd4ml_console_mlflow import MlflowConfig
from cd4ml_console_mlflow.registry import MlflowRegistry

from console.plugins import BackendContext

URL = "http://mlflow.test:5000"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers from ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/api/2.0/mlflow/") for r in self.requests]


def make(
    ctx: BackendContext, handler: Handler, tmp_path: Path, **options: Any
) -> tuple[MlflowRegistry, Recorder]:
    rec = Recorder(handler)
    config = MlflowConfig(
        url=URL,
        use_keyring=False,
        credentials_file=tmp_path / "no-credentials.toml",
        **{"auth": "none", **options},
    )
    return MlflowRegistry(config, ctx, transport=httpx.MockTransport(rec)), rec


def reply(status: int = 200, body: Any = None, *, text: str | None = None) -> Handler:
    def handle(_: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body if body is not None else {})

    return handle


MODELS = {"registered_models": [{"name": "churn", "tags": [{"key": "team", "value": "ml"}]}]}


def auth_header(rec: Recorder) -> str | None:
    return rec.requests[-1].headers.get("authorization")
