"""Fixtures of the gitlab-ci plugin's tests: the loopback GitLab stub and backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cd4ml_console_gitlab_ci import PLUGIN, GitLabCIConfig
from cd4ml_console_gitlab_ci.pipelines import GitLabCI
from gitlab_stub import API_TOKEN, PROJECT, TRIGGER_TOKEN, GitLabStub, serve

from console.plugins import BackendContext

TOKEN_ENV = "CD4ML_TEST_GITLAB_TOKEN"
TRIGGER_ENV = "CD4ML_TEST_GITLAB_TRIGGER"


@pytest.fixture
def gitlab() -> Iterator[GitLabStub]:
    """A running stub; the test fails if any response broke GitLab's documented fields."""
    stub = GitLabStub()
    with serve(stub):
        yield stub
    assert stub.errors == [], "the stub sent responses GitLab's documentation does not describe"


@pytest.fixture
async def make(
    gitlab: GitLabStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., GitLabCI]]:
    monkeypatch.setenv(TOKEN_ENV, API_TOKEN)
    monkeypatch.setenv(TRIGGER_ENV, TRIGGER_TOKEN)
    made: list[GitLabCI] = []

    def factory(**options: Any) -> GitLabCI:
        options.setdefault("project", PROJECT)
        options.setdefault("url", gitlab.base)
        options.setdefault("token_env", TOKEN_ENV)
        options.setdefault("trigger_token_env", TRIGGER_ENV)
        options.setdefault("use_keyring", False)
        options.setdefault("credentials_file", tmp_path / "none.toml")
        options.setdefault("poll_seconds", 0.01)
        ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path, config=None, timeout=5.0)
        backend: GitLabCI = PLUGIN.factory(GitLabCIConfig(**options), ctx)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        await backend.aclose()
