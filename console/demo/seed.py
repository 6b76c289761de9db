"""Seed the demo's audit log: the history the tags imply, and a request waiting for approval.

The waiting request is made by the real release service acting as the seeded requester, so it
is exactly what `approve` expects (gate evidence, expected stage version, schema ack).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from console.domain import Actor

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="demo-seed")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return,unused-ignore]


async def seed_audit(path: Path, now: datetime) -> int:
    """Append the story's past events and open its pending requests; returns the count."""
    from console.audit.anchor import write_anchor
    from console.config import read_config_file
    from console.demo.content import CONFIG_NAME
    from console.demo.story import pending_requests, seeded_events
    from console.ports import AuditUnavailable
    from console.services.release import ReleaseService
    from console.services.workspace import open_workspace

    config = read_config_file(path / CONFIG_NAME)
    # Seeding needs no metrics server: drop it so nothing waits on a port that is not up. The
    # story's request was made a day ago, on the live figures of then: no live gates now.
    policy = config.policy.model_copy(
        update={
            "stages": {
                name: stage.model_copy(update={"live": None})
                for name, stage in config.policy.stages.items()
            }
        }
    )
    config = config.model_copy(
        update={
            "backends": {k: v for k, v in config.backends.items() if k != "metrics"},
            "policy": policy,
        }
    )
    pending = {r.id: r for r in pending_requests(now)}
    async with open_workspace(config) as ws:
        store = ws.audit
        if store is None:
            raise AuditUnavailable(f"the demo's audit log: {ws.problems.get('audit')}")
        count = 0
        # In the order of their times, so that seq and time never disagree in the log.
        for event in seeded_events(now):
            req = pending.get(event.request_id)
            if req is None:
                await store.append(event)
            else:  # opened through the release service, as its requester
                service = ReleaseService(
                    ws,
                    identity=functools.partial(Actor, user=req.requested_by),
                    clock=functools.partial(_constant, req.created_at),
                    new_id=functools.partial(str, req.id),
                )
                await service.promote(
                    req.model, req.version, req.stage, reason=req.reason, ack_schema_change=True
                )
            count += 1
        count_, head = await store.head()
        # Anchor at the story's clock so two builds with the same seed are byte-identical.
        await write_anchor(ws.config.root, count_, head, None, at=now)
    return count


def _constant(value: datetime) -> datetime:
    return value


def seed_demo_audit(path: Path, now: datetime) -> int:
    return run_sync(seed_audit(path, now))
