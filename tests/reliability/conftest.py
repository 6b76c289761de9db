"""Fixtures of the reliability tests: a local DNS answer for ``.invalid``, the fault server,
and an event-loop lag probe (the TUI shares the services' event loop: a blocked loop means
keys that do not answer)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from .faultserver import FaultServer

LONG = os.environ.get("CD4ML_LONG", "").strip().lower() in {"1", "true", "yes", "on"}
LOOPBACK = {"127.0.0.1", "::1", "localhost", "ip6-localhost", ""}


@contextlib.contextmanager
def local_dns() -> Iterator[list[str]]:
    """Answer lookups of ``*.invalid`` locally with "name not known", pass loopback through,
    and refuse (and report) any other name: no test here may send a DNS query off the machine.

    glibc does *not* answer ``.invalid`` itself: it asks the nameserver of /etc/resolv.conf
    (seen with strace), so a real lookup would leave the machine.
    """
    real = socket.getaddrinfo
    strays: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        name = name.rstrip(".").lower()
        if name.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if name in LOOPBACK or _is_ip_literal(name):
            return real(host, *args, **kw)
        strays.append(name)
        raise socket.gaierror(socket.EAI_NONAME, f"reliability tests resolve no name ({name})")

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield strays
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def fake_dns() -> Iterator[list[str]]:
    """:func:`local_dns` for every test of this folder; a stray lookup fails the test."""
    with local_dns() as strays:
        yield strays
    assert strays == [], f"a test tried to resolve names off the machine: {strays}"


def _is_ip_literal(name: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name)
        except OSError:
            continue
        return name.startswith("127.") or name == "::1"
    return False


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


class LagProbe:
    """Ticks every ``period`` seconds on the running loop; ``worst`` is the longest stall."""

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.period)
            now = time.monotonic()
            self.worst = max(self.worst, now - last - self.period)
            last = now

    def start(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.worst


@pytest.fixture
async def lag() -> AsyncIterator[LagProbe]:
    probe = LagProbe().start()
    yield probe
    await probe.stop()
