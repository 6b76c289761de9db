"""Helpers shared by the audit tests: events and stores in tmp_path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.backends.sqlite_audit import SqliteAuditStore
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.options import SqliteAuditConfig

T0 = datetime(2024, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)


def make_event(i: int = 0, **over: Any) -> AuditEvent:
    """A realistic event; ``i`` varies the model, time and request."""
    fields: dict[str, Any] = {
        "seq": 0,
        "at": T0 + timedelta(minutes=i),
        "actor": "alice from 10.0.0.7",
        "action": ("promote.intent", "promote.outcome", "approve")[i % 3],
        "model": ("churn", "fraud-detector", "ranker")[i % 3],
        "version": f"v1.{i}.0",
        "stage": "prod",
        "before": f"v1.{max(i - 1, 0)}.0",
        "after": f"v1.{i}.0",
        "reason": f"better AUC (#{i}) — approved by bob",
        "result": "ok",
        "request_id": f"req-{i:04d}",
        "details": {"gates": {"auc": 0.91 + i / 1000, "ci": "green"}, "approvers": ["bob"]},
    }
    fields.update(over)
    return AuditEvent(**fields)


def make_store(tmp_path: Path, **config: Any) -> SqliteAuditStore:
    ctx = BackendContext(workspace=tmp_path, state_dir=tmp_path / "state", config=None, timeout=5)
    return SqliteAuditStore(SqliteAuditConfig(**config), ctx)
