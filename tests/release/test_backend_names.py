"""A backend that hangs or breaks is named in release messages as configured (kind, type and
where it points), never with a credential from its URL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.config import ConsoleConfig
from console.services.release import ReleaseError
from console.services.release.facts import Unavailable, call, describe
from tests.release.fakes import World

SECRETS = ("hunter2", "s3cr3t", "bot:", "audit:")

BACKENDS = """
[backends.ci]
type = "github-actions"
repository = "acme/fraud-model"
api_url = "https://bot:hunter2@ghe.example.com/api/v3?access_token=s3cr3t"

[backends.registry]
type = "mlflow"
url = "https://bot:hunter2@mlflow.example.com/ml?token=s3cr3t"

[backends.audit]
type = "postgres"
dsn = "postgresql://audit:hunter2@db.example.com/console"
"""


def hanging(*methods: str) -> Any:
    """An object whose ``methods`` never answer."""

    async def never(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)

    return type("Hang", (), {"name": "hang", **{m: staticmethod(never) for m in methods}})()


def clean(text: str) -> None:
    assert not any(s in text for s in SECRETS), text


async def test_hanging_ci_is_named_in_the_ci_gate_without_its_secret() -> None:
    w = World(approvals=1, top="timeout_seconds = 0.1\n", extra=BACKENDS)
    w.ws.backends["ci"] = hanging("runs_for")
    plan = await w.svc("dev").plan_promotion("m", "v1.1.0", "production")
    ci = next(g for g in plan.gates if g.gate == "ci")
    assert not ci.passed  # fails closed
    assert ci.detail == (
        "CI unknown: the ci backend github-actions (https://ghe.example.com/api/v3, "
        "acme/fraud-model) did not answer within 0.1s"
    )
    clean(ci.detail)


async def test_hanging_registry_read_names_host_not_secret() -> None:
    w = World(approvals=0, top="timeout_seconds = 0.1\n", extra=BACKENDS)
    w.registry.stages = hanging("stages").stages  # type: ignore[method-assign]
    with pytest.raises(ReleaseError) as err:
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert err.value.message == (
        "registry: the registry backend mlflow (https://mlflow.example.com/ml) did not answer "
        "within 0.1s; nothing was changed"
    )
    clean(err.value.message)
    assert w.registry.assign_calls == 0


async def test_hanging_audit_write_names_the_backend_but_never_its_dsn() -> None:
    w = World(approvals=0, top="timeout_seconds = 0.05\n", extra=BACKENDS)
    svc = w.svc("dev")
    svc.write_timeout = 0.05
    w.audit.append = hanging("append").append  # type: ignore[method-assign]
    with pytest.raises(ReleaseError) as err:
        await svc.promote("m", "v1.1.0", "production", reason="r")
    assert "(the audit backend postgres did not answer within 0.05s)" in err.value.message
    assert "db.example.com" not in err.value.message  # a DSN is not shown at all
    clean(err.value.message)


async def test_call_names_the_backend_only_when_given_the_config() -> None:
    config = ConsoleConfig.model_validate(
        {"backends": {"metrics": {"type": "scrape", "url": "http://u:hunter2@h:9/m?token=s3cr3t"}}}
    )
    with pytest.raises(Unavailable) as err:
        await call("metrics", asyncio.sleep(1), 0.01, config)
    assert str(err.value) == "the metrics backend scrape (http://h:9/m) did not answer within 0.01s"
    with pytest.raises(Unavailable) as err:
        await call("metrics", asyncio.sleep(1), 0.01)
    assert str(err.value) == "the metrics backend did not answer within 0.01s"
    broken = describe(OSError("GET http://u:hunter2@h/x?token=s3cr3t: boom"), "metrics", 1, config)
    assert broken.startswith("the metrics backend scrape (http://h:9/m) failed: OSError")
    clean(broken)
