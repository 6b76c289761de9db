"""The per-stage intent lock in the SQLite store (the AuditStore port's contract): a locking
intent takes (model, stage) in the append's transaction, its outcome releases it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from audit_helpers import make_event, make_store

from console.backends.sqlite_audit import SqliteAuditStore
from console.ports import StageBusy


def intent(i: int, model: str = "m", stage: str = "production", **details: object):
    return make_event(i, action="intent", model=model, stage=stage, after=f"v{i}",
                      details={"op": "promote", "lock": True, **details})  # fmt: skip


def outcome(i: int, intent_seq: int, model: str = "m", stage: str = "production"):
    return make_event(i, action="outcome", model=model, stage=stage,
                      details={"op": "promote", "intent_seq": intent_seq})  # fmt: skip


async def test_a_second_locking_intent_is_refused_naming_the_holder(
    store: SqliteAuditStore,
) -> None:
    first = await store.append(intent(1))
    with pytest.raises(StageBusy) as busy:
        await store.append(intent(2))
    assert busy.value.intent == first and "intent seq 1" in busy.value.message
    assert (await store.head())[0] == 1  # nothing appended
    other_stage = await store.append(intent(3, stage="staging"))
    other_model = await store.append(intent(4, model="n"))
    assert [e.seq for e in await store.open_intents()] == [1, other_stage.seq, other_model.seq]
    assert [e.seq for e in await store.open_intents(model="m")] == [1, 2]


async def test_the_outcome_releases_the_lock(store: SqliteAuditStore) -> None:
    first = await store.append(intent(1))
    await store.append(outcome(2, first.seq))
    assert await store.open_intents() == []
    second = await store.append(intent(3))
    assert [e.seq for e in await store.open_intents(model="m")] == [second.seq]


async def test_unlocked_intents_take_nothing(store: SqliteAuditStore) -> None:
    await store.append(make_event(1, action="intent", model="m", stage="production",
                                  details={"op": "deploy"}))  # fmt: skip
    await store.append(intent(2))
    assert [e.seq for e in await store.open_intents()] == [2]


async def test_two_stores_racing_for_one_stage_give_one_winner(tmp_path: Path) -> None:
    stores = [make_store(tmp_path) for _ in range(6)]
    try:
        results = await asyncio.gather(
            *(s.append(intent(i)) for i, s in enumerate(stores)), return_exceptions=True
        )
    finally:
        for s in stores:
            await s.aclose()
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, StageBusy)]
    assert len(won) == 1 and len(lost) == 5
    assert all(exc.intent.seq == won[0].seq for exc in lost)


async def test_a_schema_1_log_gets_its_locks_rebuilt_from_the_records(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    held = await store.append(intent(1))
    done = await store.append(intent(2, stage="staging"))
    await store.append(outcome(3, done.seq, stage="staging"))
    await store.aclose()
    with sqlite3.connect(store.path) as conn:  # as schema 1 left it: no lock table
        conn.execute("DROP TABLE stage_locks")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    again = make_store(tmp_path)
    try:
        assert [e.seq for e in await again.open_intents()] == [held.seq]
        with pytest.raises(StageBusy):
            await again.append(intent(4))
    finally:
        await again.aclose()
