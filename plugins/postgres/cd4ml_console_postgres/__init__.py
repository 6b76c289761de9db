"""PostgreSQL as the console's ``audit`` store: the same hash chain as the embedded SQLite
store, shared by every bastion user of one database (docs/plugins/postgres.md)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.credentials import CredentialOptions

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresAuditConfig(CredentialOptions):
    """``[backends.audit]`` with ``type = "postgres"``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    dsn: str = Field(
        description="libpq URL or key=value string without the password, "
        "e.g. postgresql://audit@db.internal:5432/cd4ml"
    )
    schema_name: str = Field(default="cd4ml_audit", alias="schema")
    auth: Literal["password", "libpq"] = Field(
        default="password",
        description="password: looked up like every credential; libpq: .pgpass, PGPASSWORD, "
        "peer or certificate authentication",
    )
    timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(value)
        except ProgrammingError:
            raise ValueError(
                "not a libpq connection string (postgresql://USER@HOST:PORT/DB or "
                "host=... dbname=...)"
            ) from None
        if "password" in params:
            raise ValueError(
                "holds a password; remove it and store it with `cd4ml-console login postgres` "
                "(or set token_env)"
            )
        return value

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("use lower-case letters, digits and _ (at most 63), e.g. cd4ml_audit")
        return value


def build(config: PostgresAuditConfig, ctx: BackendContext) -> Any:
    """Factory used by the console: a PostgresAuditStore bound to ``config``."""
    from cd4ml_console_postgres.store import PostgresAuditStore

    return PostgresAuditStore(config, ctx)


PLUGIN = BackendPlugin(
    name="postgres",
    kinds=frozenset({"audit"}),
    api_version=API_VERSION,
    config_model=PostgresAuditConfig,
    factory=build,
    description="hash-chained audit log in PostgreSQL, shared by many users",
)

__all__ = ["PLUGIN", "PostgresAuditConfig", "build"]
