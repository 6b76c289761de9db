"""Release decisions use the system clock: CD4ML_NOW (a rendering aid) can not steer them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.services.release import Refused
from console.services.release.gates import DAYS
from console.tui.clock import clock_from_env
from console.tui.wiring import build_services
from tests.release.fakes import World, actor


def _window_only_at(when: datetime) -> str:
    """A production change window open for the one hour of ``when`` (UTC)."""
    start = when.hour
    return (
        "[[policy.stages.production.windows]]\n"
        f'days = ["{DAYS[when.weekday()]}"]\n'
        f"start_hour = {start}\nend_hour = {start + 1}\n"
        'timezone = "UTC"\n'
    )


async def test_a_forged_cd4ml_now_moves_no_change_window_and_no_audit_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = datetime.now(UTC)
    forged = real + timedelta(days=3, hours=12)  # another weekday, whatever today is
    world = World(approvals=0, extra=_window_only_at(forged))
    monkeypatch.setenv("CD4ML_NOW", forged.isoformat())
    services = build_services(world.ws, clock_from_env(), identity=lambda: actor("dev"))
    assert services.overview.clock() == forged  # the screens render at the frozen time

    plan = await services.release.plan_promotion("m", "v1.1.0", "production")
    window = next(g for g in plan.gates if g.gate == "window")
    assert not window.passed and "outside the change windows" in window.detail
    assert not plan.ready

    with pytest.raises(Refused, match="outside the change windows"):
        await services.release.promote("m", "v1.1.0", "production", reason="forged clock")
    assert world.registry.pointers["production"] == "v1.0.0"
    written = [e.at for e in world.audit.rows]
    assert written and all(abs(at - datetime.now(UTC)) < timedelta(minutes=5) for at in written)
