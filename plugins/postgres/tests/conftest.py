"""Fixtures of the postgres plugin's tests: one cluster per session, one schema per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cd4ml_console_postgres.store import PostgresAuditStore
from postgres_peer import PASSWORD_ENV, Cluster, make_store, new_schema, pg_cluster

__all__ = ["pg_cluster", "pg_env", "store"]


@pytest.fixture
def pg_env(pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The cluster, with its password in the environment variable the stores read."""
    monkeypatch.setenv(PASSWORD_ENV, pg_cluster.password)
    return pg_cluster


@pytest.fixture
async def store(pg_env: Cluster, tmp_path: Path) -> AsyncIterator[PostgresAuditStore]:
    s = make_store(pg_env, new_schema(), tmp_path)
    yield s
    await s.aclose()
