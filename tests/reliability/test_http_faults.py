"""Fault matrix, HTTP backends called directly: every backend x every fault, for its read and
(where it has one) its mutation. All cells run at once against one fault server (each cell on
its own path prefix), then every cell is asserted on its own:

- the call raises the documented BackendError subclass, never anything else;
- its message is one line that says where (the URL) or what did not answer;
- a read is tried at most 4 times (1 + 3 retries), all within 10 s; a request that can not
  succeed by waiting (401, 403, 404, a bad body) is not retried; a 429 waits its Retry-After;
- a mutation is sent exactly once (never when the peer can not be reached at all);
- the call returns within the retry window plus one attempt's cap.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from console.ports import BackendError, Conflict

from .conftest import local_dns
from .faultserver import FAULTS, RETRY_AFTER, SERVER_FAULTS, FaultServer, Hit
from .http_cases import BY_NAME, CASES, TIMEOUT, TOKEN_ENV, TRIGGER_ENV, HttpCase

# Wall-time bounds: `make test` runs these after the parallel tests, on a quiet machine.
pytestmark = [pytest.mark.quiet, pytest.mark.xdist_group("reliability-http")]

RETRY_WINDOW = 10.0
ATTEMPT_CAP = 2 * TIMEOUT + 1  # http_api bounds a whole exchange so
NOT_RETRIED = {"http_401", "http_403", "http_404", "malformed", "wrong_shape", "empty", "huge"}
LANDS = {"slow_body"}  # faults under which the peer applies a mutation before answering
SLACK = 0.75  # scheduling on a loaded 2-core machine


@dataclass
class Outcome:
    """What one cell did."""

    error: BaseException | None = None
    value: Any = None
    elapsed: float = 0.0
    hits: list[Hit] = field(default_factory=list)


def _cells() -> Iterator[tuple[str, str, str]]:
    for case in CASES:
        for fault in FAULTS:
            yield case.name, fault, "read"
            if case.mutate is not None:
                yield case.name, fault, "mutate"


CELLS = list(_cells())


def _setup_cell(server: FaultServer, tmp: Path, name: str, fault: str, op: str) -> Any:
    """The cell's route and backend (built before any clock starts: building an httpx client
    loads certificates, which would otherwise be timed against the first cells)."""
    case = BY_NAME[name]
    cell = f"{name}-{fault}-{op}"
    methods = frozenset({"GET"}) if op == "read" else frozenset({"POST"})
    mode = fault if fault in SERVER_FAULTS else "good"
    server.add(cell, case.peer(), mode=mode, methods=methods)
    return case.make(server.url(cell, fault), tmp / cell)


async def _run_cell(server: FaultServer, backend: Any, name: str, fault: str, op: str) -> Outcome:
    case = BY_NAME[name]
    out = Outcome()
    started = time.monotonic()
    try:
        out.value = await (case.read(backend) if op == "read" else case.mutate(backend))  # type: ignore[misc]
    except BaseException as exc:  # every cell must say what it raised
        out.error = exc
    out.elapsed = time.monotonic() - started
    out.hits = list(server.cells[f"{name}-{fault}-{op}"].hits)
    await backend.aclose()
    return out


@pytest.fixture(scope="module")
def outcomes(
    fault_server: FaultServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str, str], Outcome]:
    tmp = tmp_path_factory.mktemp("http-faults")
    saved = {k: os.environ.get(k) for k in (TOKEN_ENV, TRIGGER_ENV)}
    os.environ[TOKEN_ENV], os.environ[TRIGGER_ENV] = "tok-reliability", "trig-reliability"

    async def run_all() -> list[Outcome]:
        # Credential look-ups and DNS run in the default executor: give 150 backends room.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(64))
        # Every cell at once, except the 50 MB bodies: those run one after another, so that
        # the fault server's threads pushing 500 MB do not slow the other cells' clocks.
        backends = {c: _setup_cell(fault_server, tmp, *c) for c in CELLS}
        quick = [c for c in CELLS if c[1] != "huge"]
        done = dict(zip(quick, await asyncio.gather(
            *(_run_cell(fault_server, backends[c], *c) for c in quick)), strict=True))  # fmt: skip
        for c in CELLS:
            if c not in done:
                done[c] = await _run_cell(fault_server, backends[c], *c)
        return [done[c] for c in CELLS]

    try:
        with local_dns() as strays:
            results = asyncio.run(run_all())
        assert strays == []
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return dict(zip(CELLS, results, strict=True))


def _where(case: HttpCase, server: FaultServer, fault: str) -> tuple[str, ...]:
    """Words of which the message must contain one: the peer's address, or the DNS name."""
    if fault == "dns":
        return ("cd4ml-fault.invalid",)
    if fault == "refused":
        return ("127.0.0.1",)
    return (f"127.0.0.1:{server.port}",)


@pytest.mark.parametrize(("name", "fault", "op"), CELLS, ids=["-".join(c) for c in CELLS])
def test_cell(
    outcomes: dict[tuple[str, str, str], Outcome],
    fault_server: FaultServer,
    name: str,
    fault: str,
    op: str,
) -> None:
    case, out = BY_NAME[name], outcomes[(name, fault, op)]
    err = out.error
    if op == "mutate" and fault in LANDS and err is None:
        # The peer applied the change before trickling its answer; the backend gave up on the
        # answer, read the target back and found the change: success is the truth here.
        _assert_sent_once(case, out.hits, fault, repr(out.value))
        return
    # 1. the documented error, never anything else
    assert err is not None, f"{name} {op} under {fault} returned {out.value!r}"
    assert isinstance(err, BackendError), f"{type(err).__name__}: {err}"
    if op == "read":
        assert isinstance(err, case.expected(fault)), f"{type(err).__name__}: {err}"
    # 2. one line, in words, saying where
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text
    if not isinstance(err, Conflict):  # a Conflict comes from reading the target back
        assert any(w in text for w in _where(case, fault_server, fault)), text
    # 3. bounded: the retry window plus one attempt
    assert out.elapsed <= RETRY_WINDOW + ATTEMPT_CAP + SLACK, f"{out.elapsed:.1f}s: {text}"
    if op == "read":
        _assert_read_retries(out.hits, fault, text)
    else:
        _assert_sent_once(case, out.hits, fault, text)


def _assert_read_retries(hits: list[Hit], fault: str, text: str) -> None:
    by_key: dict[tuple[str, str, str], list[float]] = {}
    for hit in hits:
        by_key.setdefault(hit.key, []).append(hit.at)
    if fault in ("refused", "dns"):
        assert hits == []
        return
    assert hits, "the fault server saw no request"
    for key, times in by_key.items():
        assert len(times) <= 4, f"{key} tried {len(times)} times: {text}"
        assert times[-1] - times[0] <= RETRY_WINDOW + SLACK, f"{key} retried after 10 s"
        if fault in NOT_RETRIED:
            assert len(times) == 1, f"{key} retried a {fault} {len(times) - 1} times: {text}"
        if fault == "http_429":
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(g >= RETRY_AFTER - 0.05 for g in gaps), f"Retry-After ignored: {gaps}"


def _assert_sent_once(case: HttpCase, hits: list[Hit], fault: str, text: str) -> None:
    sent = [h for h in hits if h.method == "POST" and case.mutation_path in h.path]
    expected = 0 if fault in ("refused", "dns") else 1
    assert len(sent) == expected, f"mutation sent {len(sent)} times under {fault}: {text}"
