"""services.timeline: registry history and audit events merged, and stage periods."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.domain import AuditEvent, RegistryEvent, RegistryEventKind
from console.ports import Unreachable
from console.services.overview import OverviewService
from console.services.timeline import (
    TimelineService,
    from_audit,
    from_registry,
    holder_at,
    merge_entries,
    stage_periods,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def fakes() -> Any:
    if "tui_fakes" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tui" / "fakes.py"
        spec = importlib.util.spec_from_file_location("tui_fakes", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["tui_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["tui_fakes"]


def assign(version: str, day: int, stage: str = "prod") -> RegistryEvent:
    return RegistryEvent(
        model="m",
        kind=RegistryEventKind.ASSIGN,
        version=version,
        stage=stage,
        actor="dev",
        at=T0 + timedelta(days=day),
    )


def test_stage_periods_and_what_was_in_prod_when():
    events = [
        assign("v1", 0),
        assign("v2", 3),
        RegistryEvent(model="m", kind=RegistryEventKind.UNASSIGN, stage="prod", at=T0 + timedelta(days=5)),
        assign("v3", 7),
        assign("s1", 1, "staging"),
    ]  # fmt: skip
    periods = stage_periods(events)
    prod = [(p.version, p.start, p.end) for p in periods if p.stage == "prod"]
    assert prod == [
        ("v3", T0 + timedelta(days=7), None),
        ("v2", T0 + timedelta(days=3), T0 + timedelta(days=5)),
        ("v1", T0, T0 + timedelta(days=3)),
    ]
    assert holder_at(periods, "prod", T0 + timedelta(days=1)) == "v1"
    assert holder_at(periods, "prod", T0 + timedelta(days=6)) is None
    assert holder_at(periods, "prod", T0 + timedelta(days=30)) == "v3"
    assert holder_at(periods, "staging", T0 + timedelta(days=2)) == "s1"


def test_merge_is_newest_first_with_undated_last():
    reg = from_registry([assign("v1", 0), assign("v2", 2)])
    audit = from_audit(
        [
            AuditEvent(seq=1, at=T0 + timedelta(days=1), actor="ann", action="approve",
                       model="m", version="v2", stage="prod", reason="looks good"),
        ]
    )  # fmt: skip
    undated = from_registry(
        [RegistryEvent(model="m", kind=RegistryEventKind.REGISTER, version="v0")]
    )
    merged = merge_entries(undated, reg, audit)
    assert [e.source for e in merged] == ["registry", "audit", "registry", "registry"]
    assert merged[0].text == "prod → v2"
    assert merged[1].text == "approve prod v2 — looks good"
    assert merged[-1].at is None


async def test_timeline_service_over_fakes_and_a_failing_audit_store():
    f = fakes()
    ws, world = f.make_workspace()
    service = TimelineService(OverviewService(ws, clock=lambda: f.NOW))
    timeline = await service.timeline("churn-predictor")
    assert {e.source for e in timeline.entries} == {"registry", "audit"}
    stamps = [e.at for e in timeline.entries if e.at]
    assert stamps == sorted(stamps, reverse=True)
    assert timeline.periods_of("production")[0].version == "v1.10.0"
    world.faults.fail("audit", Unreachable("audit.sqlite locked", backend="sqlite-audit"))
    degraded = await TimelineService(OverviewService(ws)).timeline("churn-predictor")
    assert degraded.sections["audit"].error
    assert degraded.sections["registry"].ok
    assert {e.source for e in degraded.entries} == {"registry"}
