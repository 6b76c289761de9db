"""console.plugins.http: a body larger than MAX_BODY is refused, not read into memory; gzip
bodies and ordinary answers still arrive whole."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from console.plugins import http as http_api
from console.plugins.http import HttpApi
from console.ports import InvalidResponse


def _api(handler: httpx.MockTransport) -> HttpApi:
    api = HttpApi(backend="test", base_url="http://api.test", timeout=5)
    api.client = httpx.AsyncClient(base_url=api.base_url, transport=handler)
    return api


class Endless(httpx.AsyncByteStream):
    """A chunked body without a Content-Length; counts what was pulled from it."""

    def __init__(self, chunk: int, count: int) -> None:
        self.chunk, self.count, self.pulled = chunk, count, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += self.chunk
            yield b"x" * self.chunk


async def test_a_declared_huge_body_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(http_api, "MAX_BODY", 1 << 20)
    body = Endless(1 << 16, 64)  # 4 MB
    api = _api(httpx.MockTransport(lambda r: httpx.Response(
        200, headers={"content-length": str(4 << 20)}, stream=body)))  # fmt: skip
    with pytest.raises(InvalidResponse, match=r"answered more than 1 MB"):
        await api.get("runs")
    assert body.pulled == 0
    await api.aclose()


async def test_an_undeclared_huge_body_is_cut_off_at_the_limit(monkeypatch):
    monkeypatch.setattr(http_api, "MAX_BODY", 1 << 20)
    body = Endless(1 << 16, 1024)  # 64 MB if read to the end
    api = _api(httpx.MockTransport(lambda r: httpx.Response(200, stream=body)))
    with pytest.raises(InvalidResponse, match=r"http://api.test/runs answered more than 1 MB"):
        await api.get("runs")
    assert body.pulled <= (1 << 20) + (1 << 16)
    await api.aclose()


async def test_gzip_and_plain_answers_arrive_whole():
    doc = {"runs": [{"id": i} for i in range(500)]}
    packed = gzip.compress(json.dumps(doc).encode())

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gz":
            return httpx.Response(200, headers={"content-encoding": "gzip"}, content=packed)
        return httpx.Response(200, json=doc)

    api = _api(httpx.MockTransport(answer))
    for path in ("gz", "plain"):
        resp = await api.get(path)
        assert api.json_of(resp, "runs") == doc
    await api.aclose()


async def test_a_request_waiting_for_its_turn_is_not_timed_out():
    """The console bounds the requests in flight itself (max_connections), where httpx's pool
    would count the wait for a connection against the request's timeout: 12 answers of 0.2 s
    through 2 slots take 1.2 s, four times the 0.3 s timeout, and every one succeeds."""
    depth = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal depth, peak
        depth += 1
        peak = max(peak, depth)
        await asyncio.sleep(0.2)
        depth -= 1
        return httpx.Response(200, json={"ok": True})

    api = HttpApi(backend="test", base_url="http://api.test", timeout=0.3, max_connections=2)
    api.client = httpx.AsyncClient(base_url=api.base_url, transport=httpx.MockTransport(handler))
    got = await asyncio.gather(*(api.get(f"runs/{i}") for i in range(12)))
    assert [r.status_code for r in got] == [200] * 12
    assert peak == 2
    await api.aclose()
