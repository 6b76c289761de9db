"""Fault matrix through services.overview (what the TUI's panels and `status` show): a real
workspace (git, GTO tags, DVC files, runs folder, SQLite audit) with one HTTP backend in place
of its kind; the backend first answers well, then with each fault. For every cell:

- the model view comes back within timeout + 1 s (the panel is never stuck);
- the faulty kind's section says what is wrong in one line of words;
- it still shows the last good value, with the time it was fetched (its age);
- every other section is fine;
- the event loop never stalls for a second (the TUI's keys run on the same loop).
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.services.overview import ModelView, OverviewService
from console.services.workspace import Workspace, open_workspace
from tests.release.conftest import make_workspace

from .conftest import LagProbe, local_dns
from .faultserver import FAULTS, SERVER_FAULTS, FaultServer
from .http_cases import BY_NAME, CASES, TIMEOUT, TOKEN_ENV, TRIGGER_ENV, make_scrape, scrape_good

# Wall-time bounds: `make test` runs these after the parallel tests, on a quiet machine.
pytestmark = [pytest.mark.quiet, pytest.mark.xdist_group("reliability-overview")]

CELLS = [(c.name, f) for c in CASES for f in FAULTS]
BATCH = 6  # cells at once: enough to share the loop, few enough to time each one honestly
LABELS = {"unreachable", "unauthorized", "not found", "invalid response", "timeout"}


@dataclass
class Cell:
    name: str
    fault: str
    ws: Workspace
    svc: OverviewService
    good: ModelView | None = None
    bad: ModelView | None = None
    elapsed: float = 0.0
    lag: float = 0.0
    started_at: datetime | None = None
    errors: list[BaseException] = field(default_factory=list)


def _view_value(case_kind: str, view: ModelView) -> Any:
    """What the faulty kind contributed to the view."""
    if case_kind == "metrics":
        return view.health
    if case_kind == "registry":
        return (view.versions, view.stages)
    return {v: d.ci for v, d in view.details.items()}


async def _good_phase(cell: Cell) -> None:
    cell.good = await cell.svc.model_view("m")


async def _bad_phase(server: FaultServer, cell: Cell, tmp: Path) -> None:
    case = BY_NAME[cell.name]
    if cell.fault in SERVER_FAULTS:
        server.cells[f"ov-{cell.name}-{cell.fault}"].mode = cell.fault
    else:  # the peer's address now refuses or does not resolve
        old = cell.ws.backends[case.kind]
        cell.ws.backends[case.kind] = case.make(
            server.url(f"ov-{cell.name}-{cell.fault}", cell.fault), tmp
        )
        await old.aclose()
    probe = LagProbe().start()
    cell.started_at = cell.svc.clock()
    started = time.monotonic()
    try:
        cell.bad = await cell.svc.model_view("m")
    except BaseException as exc:
        cell.errors.append(exc)
    cell.elapsed = time.monotonic() - started
    cell.lag = await probe.stop()


@pytest.fixture(scope="module")
def cells(fault_server: FaultServer, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Cell]:
    tmp = tmp_path_factory.mktemp("overview-faults")
    repo = make_workspace(tmp / "ws").path
    config = load_config(None, repo).model_copy(update={"timeout_seconds": TIMEOUT})
    saved = {k: os.environ.get(k) for k in (TOKEN_ENV, TRIGGER_ENV)}
    os.environ[TOKEN_ENV], os.environ[TRIGGER_ENV] = "tok-reliability", "trig-reliability"

    async def run() -> dict[Any, Cell]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(64))
        shared = open_workspace(config)
        fault_server.add("ov-metrics", scrape_good)
        shared.backends["metrics"] = make_scrape(fault_server.url("ov-metrics"), tmp / "m")
        out: dict[Any, Cell] = {}
        for name, fault in CELLS:
            case = BY_NAME[name]
            route = f"ov-{name}-{fault}"
            fault_server.add(route, case.peer(), methods=frozenset({"GET"}))
            ws = Workspace(config=config, backends=dict(shared.backends))
            ws.backends[case.kind] = case.make(fault_server.url(route), tmp / route)
            out[(name, fault)] = Cell(name, fault, ws, OverviewService(ws))
        await OverviewService(shared).model_view("m")  # warm the shared backends' caches
        batches = [list(out.values())[i : i + BATCH] for i in range(0, len(out), BATCH)]
        for batch in batches:
            await asyncio.gather(*(_good_phase(c) for c in batch))
        quick = [c for c in out.values() if c.fault != "huge"]
        for batch in [quick[i : i + BATCH] for i in range(0, len(quick), BATCH)]:
            await asyncio.gather(*(_bad_phase(fault_server, c, tmp) for c in batch))
        for c in out.values():
            if c.fault == "huge":
                await _bad_phase(fault_server, c, tmp)
        for c in out.values():
            await c.ws.backends[BY_NAME[c.name].kind].aclose()
        await shared.aclose()
        return out

    try:
        with local_dns() as strays:
            result = asyncio.run(run())
        assert strays == []
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return result


@pytest.mark.parametrize(("name", "fault"), CELLS, ids=["-".join(c) for c in CELLS])
def test_cell(cells: dict[Any, Cell], name: str, fault: str) -> None:
    cell, kind = cells[(name, fault)], BY_NAME[name].kind
    assert not cell.errors, f"model_view raised: {cell.errors!r}"
    good, bad = cell.good, cell.bad
    assert good is not None and bad is not None
    # The good phase saw every section fine, the faulty kind included.
    assert good.errors == {}, good.errors
    assert _view_value(kind, good), "the good phase showed nothing of the backend"
    # Within timeout + 1 s, and the loop kept ticking.
    assert cell.elapsed <= TIMEOUT + 1, f"{cell.elapsed:.2f}s"
    assert cell.lag < 1.0, f"the event loop stalled {cell.lag:.2f}s"
    # The section says what is wrong, in one line of words.
    section = bad.sections[kind]
    assert section.error, f"{kind} shows no error under {fault}"
    assert "\n" not in section.error and "Traceback" not in section.error, section.error
    assert section.kind in LABELS, section.kind
    assert name in section.error or "did not answer within" in section.error, section.error
    # Stale-if-error: the last good value, with the time it was fetched.
    assert section.stale, section
    assert section.fetched_at is not None and cell.started_at is not None
    assert section.fetched_at <= cell.started_at
    assert _view_value(kind, bad) == _view_value(kind, good)
    # Every other section is fine.
    others = {k: s.error for k, s in bad.sections.items() if k != kind and s.error}
    assert others == {}, others
